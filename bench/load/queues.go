package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// queueWatch samples the JetStream consumers of an embedded:// transport
// (opened with listen=) every 500 ms: how many messages each consumer
// group (router on the bus, dispatch on the target queue) has not yet
// acked. It shows which stage of the path falls behind.
type queueWatch struct {
	mu      sync.Mutex
	peak    map[string]uint64 // consumer "stream/durable" -> peak unacked
	atEnd   map[string]uint64 // when sending stopped
	current map[string]uint64
	stop    chan struct{}
	done    chan struct{}
}

// withListen adds listen=ADDR to an embedded:// URL.
func withListen(transport, addr string) (string, error) {
	u, err := url.Parse(transport)
	if err != nil || u.Scheme != "embedded" {
		return "", fmt.Errorf("-queues needs an embedded:// transport, not %q", transport)
	}
	q := u.Query()
	q.Set("listen", addr)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func watchQueues(addr string, verbose io.Writer) (*queueWatch, error) {
	nc, err := nats.Connect("nats://"+addr, nats.Name("busbar-load-queues"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	w := &queueWatch{peak: map[string]uint64{}, current: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer nc.Close()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for i := 0; i < 100_000; i++ { // ~14 h at most
			w.sample(js)
			if verbose != nil && i%2 == 0 {
				fmt.Fprintf(verbose, "queues %6.1fs %s\n", time.Since(start).Seconds(), w.line(w.snapshot()))
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

func (w *queueWatch) sample(js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cur := map[string]uint64{}
	names := js.StreamNames(ctx)
	for sn := range names.Name() {
		s, err := js.Stream(ctx, sn)
		if err != nil {
			continue
		}
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			cur[sn+"/"+ci.Name] = ci.NumPending + uint64(ci.NumAckPending)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current = cur
	for k, v := range cur {
		w.peak[k] = max(w.peak[k], v)
	}
}

func (w *queueWatch) snapshot() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]uint64, len(w.current))
	for k, v := range w.current {
		m[k] = v
	}
	return m
}

func (w *queueWatch) markSendEnd() { w.atEnd = w.snapshot() }

func (w *queueWatch) close() {
	close(w.stop)
	<-w.done
}

// line formats consumer backlogs, busiest first; DLQ consumers are left out.
func (w *queueWatch) line(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.Contains(strings.ToLower(k), "dlq") {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
