package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The receiver is the HTTP target of the benchmark rule. It runs as its own
// process (the bench binary with -role=receiver) so its CPU use is measured
// apart from the generator's and busbar's. For every delivery it records
// the end-to-end latency (arrival − data.sentAt) and the event id, to count
// unique deliveries and duplicates. It takes structured events
// (application/cloudevents+json) and, from a target with batch:, CloudEvents
// batches (application/cloudevents-batch+json): each event of a batch
// counts, with the batch's arrival as its own.

type receiver struct {
	received atomic.Uint64 // deliveries of measured events (ids "ld-N")
	dups     atomic.Uint64 // of which repeated an id already seen
	warmup   atomic.Uint64 // deliveries of warm-up events ("wu-N")
	unknown  atomic.Uint64 // events with another id (not from this run)
	bad      atomic.Uint64 // not a structured CloudEvent, or no sentAt
	requests atomic.Uint64 // requests answered 200
	first    atomic.Int64  // unix nanos of the first measured delivery
	last     atomic.Int64  // unix nanos of the latest measured delivery
	e2e      hist

	mu   sync.Mutex
	seen []uint64 // bitset of measured seqs delivered
}

// maxSeq bounds the duplicate bitset (512 MiB of ids would be 4·10⁹ events).
const maxSeq = 1 << 32

// recvStats is the /stats answer.
type recvStats struct {
	Received uint64      `json:"received"`
	Unique   uint64      `json:"unique"`
	Dups     uint64      `json:"dups"`
	Warmup   uint64      `json:"warmup"`
	Unknown  uint64      `json:"unknown"`
	Bad      uint64      `json:"bad"`
	Requests uint64      `json:"requests"`
	First    int64       `json:"first"`
	Last     int64       `json:"last"`
	Hist     [][2]uint64 `json:"hist"`
	Max      int64       `json:"max"`
	CPUNanos int64       `json:"cpu_ns"`
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/events":
		rc.event(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		rc.stats(w)
	case r.Method == http.MethodPost && r.URL.Path == "/reset":
		rc.reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (rc *receiver) event(w http.ResponseWriter, r *http.Request) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	_, err := io.Copy(buf, io.LimitReader(r.Body, 1<<20))
	now := time.Now().UnixNano()
	*bp = buf.Bytes()
	ct := r.Header.Get("Content-Type")
	ok := false
	switch {
	case err != nil:
		rc.bad.Add(1)
	case strings.HasPrefix(ct, "application/cloudevents+json"):
		ok = rc.record(buf.Bytes(), now) // counts a bad one
	case strings.HasPrefix(ct, "application/cloudevents-batch+json"):
		// Each event counts, good or bad; a 400 for a bad one dead-letters
		// the whole batch, which the run's "missing" shows.
		n := 0
		ok = splitArray(buf.Bytes(), func(ev []byte) bool { n++; return rc.record(ev, now) })
		if !ok && n == 0 {
			rc.bad.Add(1) // not an array
		}
	default:
		rc.bad.Add(1)
	}
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.requests.Add(1)
	w.WriteHeader(http.StatusOK)
}

// splitArray calls fn with each element of a JSON array, without decoding
// them; false when b is not an array or fn said no to an element.
func splitArray(b []byte, fn func(elem []byte) bool) bool {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) || b[i] != '[' {
		return false
	}
	ok, depth, inStr, start := true, 0, false, -1
	for i++; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 { // the array's end
				if start >= 0 {
					ok = fn(bytes.TrimSpace(b[start:i])) && ok
				}
				return ok
			}
			depth--
		case c == ',' && depth == 0:
			if start < 0 {
				return false
			}
			ok = fn(bytes.TrimSpace(b[start:i])) && ok
			start = -1
			continue
		}
		if start < 0 && !isSpace(c) {
			start = i
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// record counts one structured event that arrived at now (unix nanos);
// false when it is not a benchmark event.
func (rc *receiver) record(ev []byte, now int64) bool {
	id, sentAt, ok := scanEvent(ev)
	if !ok {
		rc.bad.Add(1)
		return false
	}
	switch {
	case strings.HasPrefix(id, "ld-"):
		seq, err := strconv.ParseUint(id[3:], 10, 64)
		if err != nil || seq >= maxSeq {
			rc.unknown.Add(1)
			break
		}
		rc.received.Add(1)
		if !rc.mark(seq) {
			rc.dups.Add(1)
		}
		rc.e2e.record(time.Duration(now - sentAt))
		rc.first.CompareAndSwap(0, now)
		for {
			l := rc.last.Load()
			if now <= l || rc.last.CompareAndSwap(l, now) {
				break
			}
		}
	case strings.HasPrefix(id, "wu-"):
		rc.warmup.Add(1)
	default:
		rc.unknown.Add(1)
	}
	return true
}

// mark records seq as delivered; false means it was already.
func (rc *receiver) mark(seq uint64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	i := seq / 64
	if i >= uint64(len(rc.seen)) {
		n := max(2*len(rc.seen), int(i)+1, 1024)
		s := make([]uint64, n)
		copy(s, rc.seen)
		rc.seen = s
	}
	bit := uint64(1) << (seq % 64)
	if rc.seen[i]&bit != 0 {
		return false
	}
	rc.seen[i] |= bit
	return true
}

func (rc *receiver) unique() uint64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var n uint64
	for _, w := range rc.seen {
		n += uint64(bits.OnesCount64(w))
	}
	return n
}

func (rc *receiver) reset() {
	rc.mu.Lock()
	rc.seen = nil
	rc.mu.Unlock()
	rc.received.Store(0)
	rc.dups.Store(0)
	rc.unknown.Store(0)
	rc.bad.Store(0)
	rc.requests.Store(0)
	rc.first.Store(0)
	rc.last.Store(0)
	rc.e2e.reset()
}

func (rc *receiver) stats(w http.ResponseWriter) {
	cpu, _ := cpuTime(0)
	s := recvStats{
		Received: rc.received.Load(), Unique: rc.unique(), Dups: rc.dups.Load(), Warmup: rc.warmup.Load(),
		Unknown: rc.unknown.Load(), Bad: rc.bad.Load(), Requests: rc.requests.Load(), First: rc.first.Load(), Last: rc.last.Load(),
		Hist: rc.e2e.sparse(), Max: int64(rc.e2e.maxValue()), CPUNanos: int64(cpu),
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// scanEvent finds the id and data.sentAt of a structured event without
// decoding all of it; it falls back to encoding/json when the quick scan
// does not find a benchmark id first.
func scanEvent(b []byte) (id string, sentAt int64, ok bool) {
	if i := bytes.Index(b, []byte(`"id":"`)); i >= 0 {
		rest := b[i+6:]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			id = string(rest[:j])
		}
	}
	if k := bytes.Index(b, []byte(`"sentAt":`)); k >= 0 {
		rest := b[k+9:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if v, err := strconv.ParseInt(string(rest[:n]), 10, 64); err == nil {
			sentAt = v
		}
	}
	if sentAt > 0 && (strings.HasPrefix(id, "ld-") || strings.HasPrefix(id, "wu-")) {
		return id, sentAt, true
	}
	var ev struct {
		ID   string `json:"id"`
		Data struct {
			SentAt int64 `json:"sentAt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ev); err != nil || ev.ID == "" || ev.Data.SentAt == 0 {
		return "", 0, false
	}
	return ev.ID, ev.Data.SentAt, true
}

// runReceiver serves until SIGTERM/SIGINT or until stdin closes (the
// driver died). It prints "LISTEN <addr>" once it accepts connections.
func runReceiver(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: &receiver{}, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Printf("receiver: %v", err)
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
