package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/filters"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	var vals []int64
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := int64(r.ExpFloat64() * float64(2*time.Millisecond))
		vals = append(vals, v)
		h.record(time.Duration(v))
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{.5, .9, .99, .999, 1} {
		want := vals[int(q*float64(len(vals)-1))]
		got := int64(h.quantile(q))
		if got < want-want/100-1 || got > want+want/50+1 {
			t.Errorf("q%.3f = %d, want ≈ %d", q, got, want)
		}
	}
	if h.maxValue() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("max = %d, want %d", h.maxValue(), vals[len(vals)-1])
	}
	for _, v := range []int64{0, 1, 255, 256, 257, 1 << 20, 1<<40 + 12345, 1<<62 + 1} {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets || bucketUpper(i) < v || (i > 0 && bucketUpper(i-1) >= v) {
			t.Errorf("value %d: bucket %d [.., %d] is wrong", v, i, bucketUpper(i))
		}
	}
	var h2 hist
	h2.load(h.sparse(), int64(h.maxValue()))
	if h2.count() != h.count() || h2.quantile(.99) != h.quantile(.99) {
		t.Error("sparse round trip changed the histogram")
	}
}

// The generated events are valid JSON of about 1 KB, match the benchmark
// rule, and carry what the receiver scans for.
func TestEventsMatchRule(t *testing.T) {
	cfg, err := config.Parse([]byte((&driver{o: options{transport: "embedded://", targetConcurrency: 16}, recvURL: "http://127.0.0.1:1"}).config()), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := filters.NewMatcher([]filters.Rule{{Name: "r", Pattern: cfg.Rules[0].Pattern}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for seq := range uint64(200) {
		b := appendEvent(nil, "ld-", seq, now)
		if !json.Valid(b) {
			t.Fatalf("event %d is not valid JSON: %s", seq, b)
		}
		if len(b) < 900 || len(b) > 1300 {
			t.Errorf("event %d is %d bytes, want about 1 KB", seq, len(b))
		}
		got, err := m.Match(b, nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("event %d does not match the rule (%v, %v): %s", seq, got, err, b)
		}
		id, sent, ok := scanEvent(b)
		if !ok || id != "ld-"+itoa(seq) || sent != now.UnixNano() {
			t.Fatalf("scanEvent = %q %d %v", id, sent, ok)
		}
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(appendBody(nil, true, "ld-", 0, 10, now), &arr); err != nil || len(arr) != 10 {
		t.Fatalf("batch body: %v, %d events", err, len(arr))
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// With -target-batch the generated config batches the target, and the
// receiver counts each event of a CloudEvents batch with its latency.
func TestTargetBatch(t *testing.T) {
	cfg, err := config.Parse([]byte((&driver{o: options{transport: "embedded://", targetBatch: 50}, recvURL: "http://127.0.0.1:1"}).config()), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Rules[0].Targets[0]
	if !tg.BatchesRequests() || tg.Batch.MaxRows != 50 || tg.Concurrency != config.HTTPBatchConcurrency(50, config.DefaultHTTPBatchMaxInFlight) {
		t.Errorf("target: batches %v, %+v, concurrency %d", tg.BatchesRequests(), tg.Batch, tg.Concurrency)
	}

	rc := &receiver{}
	sent := time.Now().Add(-5 * time.Millisecond)
	body := appendBody(nil, true, "ld-", 0, 10, sent)
	req := httptest.NewRequest("POST", "/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents-batch+json; charset=utf-8")
	w := httptest.NewRecorder()
	rc.ServeHTTP(w, req)
	if w.Code != 200 || rc.received.Load() != 10 || rc.unique() != 10 || rc.requests.Load() != 1 || rc.bad.Load() != 0 {
		t.Errorf("status %d, received %d, unique %d, requests %d, bad %d", w.Code, rc.received.Load(), rc.unique(), rc.requests.Load(), rc.bad.Load())
	}
	if q := rc.e2e.quantile(.5); q < 5*time.Millisecond {
		t.Errorf("end-to-end latency %v, want ≥ 5ms", q)
	}
	for _, bad := range []string{`{"id":"x"}`, `[`, `[{"id":"ld-1"},]`, `not json`} {
		req := httptest.NewRequest("POST", "/events", strings.NewReader(bad))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		if w.Code != 400 {
			t.Errorf("%s: status %d, want 400", bad, w.Code)
		}
	}
	var got []string
	if !splitArray([]byte(` [ {"a":"],\"x"} , [1,{}] ,"s" ] `), func(e []byte) bool { got = append(got, string(e)); return true }) ||
		strings.Join(got, "|") != `{"a":"],\"x"}|[1,{}]|"s"` {
		t.Errorf("splitArray: %q", got)
	}
	if !splitArray([]byte(`[]`), func([]byte) bool { return false }) {
		t.Error("an empty array is an array")
	}
}
