package pipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
)

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// fakeSink records deliveries by event id. Events whose data has
// "bad": true fail permanently; the first `flaky` deliveries of events
// with "flaky": true fail with a retryable error.
type fakeSink struct {
	mu        sync.Mutex
	got       map[string]int
	bodies    map[string]string
	flaky     int
	calls     int
	batchSize []int
	unmasked  int // events delivered with an e-mail address in them
	closed    bool
}

func newFakeSink(flaky int) *fakeSink {
	return &fakeSink{got: map[string]int{}, bodies: map[string]string{}, flaky: flaky}
}

func (s *fakeSink) Deliver(_ context.Context, d sinks.Delivery) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	var ev struct {
		Data struct{ Bad, Flaky bool } `json:"data"`
	}
	_ = json.Unmarshal(d.Event, &ev)
	switch {
	case ev.Data.Bad:
		return sinks.Permanent(errors.New("the target refuses this event"))
	case ev.Data.Flaky && s.flaky > 0:
		s.flaky--
		return errors.New("the target is busy")
	}
	s.got[d.EventID]++
	if strings.Contains(string(d.Event), "@example.com") {
		s.unmasked++
	}
	if d.Body != nil {
		s.bodies[d.EventID] = string(d.Body)
	}
	return nil
}

func (s *fakeSink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// fakeBatchSink is fakeSink through DeliverBatch.
type fakeBatchSink struct{ *fakeSink }

func (s fakeBatchSink) DeliverBatch(ctx context.Context, ds []sinks.Delivery) []error {
	s.mu.Lock()
	s.batchSize = append(s.batchSize, len(ds))
	s.mu.Unlock()
	errs := make([]error, len(ds))
	for i, d := range ds {
		errs[i] = s.Deliver(ctx, d)
	}
	return errs
}

// fakeDLQ records dead letters; it refuses the first `refuse` publishes.
type fakeDLQ struct {
	mu     sync.Mutex
	msgs   []*message.Message
	topics map[string]int
	refuse int
}

func (d *fakeDLQ) Publish(topic string, msgs ...*message.Message) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse > 0 {
		d.refuse--
		return errors.New("transport unavailable")
	}
	if d.topics == nil {
		d.topics = map[string]int{}
	}
	d.topics[topic] += len(msgs)
	d.msgs = append(d.msgs, msgs...)
	return nil
}

func (d *fakeDLQ) Close() error { return nil }

func (d *fakeDLQ) byReason() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for _, m := range d.msgs {
		out[m.Metadata.Get(pipeline.MetaReason)]++
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// records of the test topic: n JSON records, kind "keep" for even i and
// "drop" for odd; every 50th kept one is "bad" (refused for good), every
// 7th kept one "flaky"; every 97th record is not JSON at all.
func records(n int) (recs []*kgo.Record, keep, bad, garbage int) {
	for i := range n {
		var v string
		switch {
		case i%97 == 96:
			v, garbage = "\x00not json", garbage+1
		case i%2 == 1:
			v = fmt.Sprintf(`{"kind":"drop","n":%d}`, i)
		default:
			b := i%100 == 0
			v = fmt.Sprintf(`{"kind":"keep","n":%d,"bad":%t,"flaky":%t,"email":"u%d@example.com"}`, i, b, i%7 == 0, i)
			if b {
				bad++
			} else {
				keep++
			}
		}
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint("k", i%13)), Value: []byte(v)})
	}
	return recs, keep, bad, garbage
}

func setup(t *testing.T, partitions int, recs []*kgo.Record) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), "in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c
}

func pipeConfig(c *kfake.Cluster, name string) config.Pipe {
	cfg := &config.Config{Pipes: []config.Pipe{{
		Name: name,
		Source: config.PipeSource{Type: config.TypeKafka,
			Kafka:   config.KafkaSource{Brokers: c.ListenAddrs(), Topic: "in"},
			Mapping: &config.SourceMapping{Source: "test", Type: "$.kind"}},
		Pattern: json.RawMessage(`{"type":["keep"]}`),
		Target: config.Target{Type: "fake", Batch: config.Batch{MaxRows: 300, MaxWait: config.Duration(20 * time.Millisecond), MaxInFlight: 3},
			Retry: config.Retry{InitialInterval: config.Duration(time.Millisecond), MaxInterval: config.Duration(20 * time.Millisecond)}},
	}}}
	cfg.ApplyDefaults()
	return cfg.Pipes[0]
}

func committedToEnd(t *testing.T, c *kfake.Cluster, group string) (bool, string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ends, err := adm.ListEndOffsets(ctx, "in")
	if err != nil {
		return false, err.Error()
	}
	ok, status := true, ""
	ends.Each(func(e kadm.ListedOffset) {
		got, _ := offs.Lookup("in", e.Partition)
		if got.At != e.Offset {
			ok = false
		}
		status += fmt.Sprintf(" p%d %d/%d", e.Partition, got.At, e.Offset)
	})
	return ok, status
}

// TestPipe: records through a pipe into a sink, with and without
// DeliverBatch: the kept ones are delivered (those refused for good and
// those that are not events are dead-lettered with their reason), the
// others skipped, retryable failures retried, the first dead-letter store
// refused and retried — and the offsets end committed at the log end.
func TestPipe(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batch=%v", batched), func(t *testing.T) {
			const n = 5000
			recs, keep, bad, garbage := records(n)
			c := setup(t, 3, recs)
			fs := newFakeSink(40)
			var sink sinks.Sink = fs
			if batched {
				sink = fakeBatchSink{fs}
			}
			dlq := &fakeDLQ{refuse: 1}
			pc := pipeConfig(c, "p")
			pc.Transform = &config.Transform{Mask: []config.Mask{{Path: "$.data.email", Action: "redact"}}}
			p, err := Start(context.Background(), Options{Pipe: pc, Sink: sink, DeadLetters: dlq, Logger: quiet(), Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			waitFor(t, 60*time.Second, "every record to be settled and committed", func() (bool, string) {
				st := p.Stats()
				if st.Delivered+st.Skipped+st.DeadLettered < n {
					return false, fmt.Sprintf("%+v", st)
				}
				return committedToEnd(t, c, "busbar.pipe.p")
			})
			got := fs.snapshot()
			if len(got) != keep {
				t.Errorf("%d distinct events delivered, want %d", len(got), keep)
			}
			st := p.Stats()
			if st.Records != n || st.Skipped != int64(n-keep-bad-garbage) || st.DeadLettered != int64(bad+garbage) || st.Retried == 0 {
				t.Errorf("stats %+v; want %d records, %d skipped, %d dead letters, some retries", st, n, n-keep-bad-garbage, bad+garbage)
			}
			if r := dlq.byReason(); r["invalid-record"] != garbage || r["permanent-failure"] != bad {
				t.Errorf("dead letters by reason %v; want %d invalid-record, %d permanent-failure", r, garbage, bad)
			}
			if dlq.topics["busbar.dlq.pipe.p"] != garbage+bad {
				t.Errorf("dead letters by topic %v", dlq.topics)
			}
			fs.mu.Lock()
			if fs.unmasked > 0 {
				t.Errorf("%d events were delivered without the pipe's mask applied", fs.unmasked)
			}
			for _, m := range dlq.msgs {
				if m.Metadata.Get("kafka-topic") != "in" || m.Metadata.Get("kafka-offset") == "" || m.Metadata.Get(pipeline.MetaError) == "" {
					t.Errorf("dead letter without its origin or error: %v", m.Metadata)
					break
				}
			}
			for id := range got {
				if !strings.HasPrefix(id, "in-") {
					t.Errorf("mapped event id %q is not <topic>-<partition>-<offset>", id)
					break
				}
			}
			if batched {
				big := 0
				for _, s := range fs.batchSize {
					big = max(big, s)
				}
				if big < 100 || big > 300 {
					t.Errorf("largest batch %d, want up to max_rows 300 and well above 1", big)
				}
			}
			fs.mu.Unlock()
			p.Close()
			if !fs.closed {
				t.Error("Close did not close the sink")
			}
		})
	}
}

// TestPipeBackpressure: while the target keeps failing, the pipe holds at
// most max_rows × (max_in_flight + 1) records, commits nothing past them,
// and once the target recovers everything arrives.
func TestPipeBackpressure(t *testing.T) {
	const n = 6000
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"kind":"keep","flaky":true,"n":%d}`, i)})
	}
	c := setup(t, 2, recs)
	fs := newFakeSink(1 << 30) // fails until told otherwise
	dlq := &fakeDLQ{}
	pc := pipeConfig(c, "bp")
	p, err := Start(context.Background(), Options{Pipe: pc, Sink: fakeBatchSink{fs}, DeadLetters: dlq, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitFor(t, 30*time.Second, "the pipe to fill up", func() (bool, string) {
		st := p.Stats()
		return st.Records >= 300*4, fmt.Sprintf("%+v", st)
	})
	time.Sleep(300 * time.Millisecond)
	st := p.Stats()
	if st.Records > 300*4+300 || st.Delivered != 0 {
		t.Fatalf("with the target down the pipe read %d records and delivered %d; want at most %d held", st.Records, st.Delivered, 300*4+300)
	}
	if ok, status := committedToEnd(t, c, "busbar.pipe.bp"); ok {
		t.Fatalf("offsets committed past undelivered records: %s", status)
	}
	fs.mu.Lock()
	fs.flaky = 0
	fs.mu.Unlock()
	waitFor(t, 60*time.Second, "everything to arrive once the target recovers", func() (bool, string) {
		if got := len(fs.snapshot()); got < n {
			return false, fmt.Sprint(got, " delivered")
		}
		return committedToEnd(t, c, "busbar.pipe.bp")
	})
}

// TestPipeCloseAndResume: a pipe closed mid-way commits what it delivered;
// a new one in the same group delivers the rest: nothing is missing.
func TestPipeCloseAndResume(t *testing.T) {
	const n = 20000
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"kind":"keep","n":%d}`, i)})
	}
	c := setup(t, 4, recs)
	fs := newFakeSink(0)
	dlq := &fakeDLQ{}
	pc := pipeConfig(c, "cr")
	p, err := Start(context.Background(), Options{Pipe: pc, Sink: fakeBatchSink{fs}, DeadLetters: dlq, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "delivery to be under way", func() (bool, string) {
		got := len(fs.snapshot())
		return got > 1000, fmt.Sprint(got)
	})
	p.Close()
	first := len(fs.snapshot())
	p2, err := Start(context.Background(), Options{Pipe: pc, Sink: fakeBatchSink{fs}, DeadLetters: dlq, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	waitFor(t, 60*time.Second, "every record", func() (bool, string) {
		if got := len(fs.snapshot()); got < n {
			return false, fmt.Sprint(got)
		}
		return committedToEnd(t, c, "busbar.pipe.cr")
	})
	dups := 0
	for _, k := range fs.snapshot() {
		dups += k - 1
	}
	t.Logf("first pipe delivered %d of %d before Close; %d delivered twice", first, n, dups)
	if first == n {
		t.Log("the first pipe delivered everything before Close; resume not exercised")
	}
}
