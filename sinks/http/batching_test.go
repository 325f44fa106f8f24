package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/busbar/busbar/sinks"
)

// batchReceiver is an endpoint that takes CloudEvents batches (decoded with
// the CloudEvents SDK, as a receiver would) and JSON arrays; answer, when
// set, chooses each request's status.
type batchReceiver struct {
	mu       sync.Mutex
	batches  [][]string // ids (or bodies) of each request, answered 2xx
	ctypes   []string
	headers  []nethttp.Header
	requests int
	answer   func(n int, r *nethttp.Request, items int) (status int, hdr map[string]string)
	bad      []string
}

func (rc *batchReceiver) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	ct := r.Header.Get("Content-Type")
	var items []string
	if strings.HasPrefix(ct, "application/cloudevents-batch+json") {
		evs, err := cehttp.NewEventsFromHTTPRequest(r)
		if err != nil {
			rc.mu.Lock()
			rc.bad = append(rc.bad, err.Error())
			rc.mu.Unlock()
			w.WriteHeader(400)
			return
		}
		for _, e := range evs {
			if err := e.Validate(); err != nil {
				rc.mu.Lock()
				rc.bad = append(rc.bad, err.Error())
				rc.mu.Unlock()
			}
			items = append(items, e.ID())
		}
	} else {
		b, _ := io.ReadAll(r.Body)
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			rc.mu.Lock()
			rc.bad = append(rc.bad, fmt.Sprintf("%s: %s", ct, b))
			rc.mu.Unlock()
			w.WriteHeader(400)
			return
		}
		for _, m := range raw {
			items = append(items, string(m))
		}
	}
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.mu.Unlock()
	if rc.answer != nil {
		status, hdr := rc.answer(n, r, len(items))
		if status >= 300 {
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			io.WriteString(w, `{"error":"refused"}`)
			return
		}
	}
	rc.mu.Lock()
	rc.batches = append(rc.batches, items)
	rc.ctypes = append(rc.ctypes, ct)
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.mu.Unlock()
	w.WriteHeader(202)
}

// delivered counts each id over the accepted requests.
func (rc *batchReceiver) delivered() (ids map[string]int, sizes []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids = map[string]int{}
	for _, b := range rc.batches {
		sizes = append(sizes, len(b))
		for _, id := range b {
			ids[id]++
		}
	}
	return ids, sizes
}

func batchSink(t *testing.T, url, fields string) sinks.Sink {
	t.Helper()
	return destSink(t, fmt.Sprintf("rules:\n  - name: r\n    targets:\n      - {id: t, type: http, url: %q, %s}\n", url, fields))
}

func event(id string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"erp","type":"order.created","datacontenttype":"application/json","data":{"n":1}}`, id))
}

// deliverAll delivers events prefix-0 … prefix-(n-1) concurrently, as the
// dispatcher does, and returns each one's error.
func deliverAll(s sinks.Sink, prefix string, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%s-%d", prefix, i)
			errs[i] = s.Deliver(context.Background(), sinks.Delivery{EventID: id, Event: event(id)})
		}()
	}
	wg.Wait()
	return errs
}

func exactlyOnce(t *testing.T, ids map[string]int, prefix string, n int) {
	t.Helper()
	for i := range n {
		if c := ids[fmt.Sprintf("%s-%d", prefix, i)]; c != 1 {
			t.Errorf("%s-%d delivered %d times", prefix, i, c)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct ids delivered, want %d", len(ids), n)
	}
}

func TestBatchCutBySize(t *testing.T) {
	rc := &batchReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	// max_wait is long and concurrency above the events: only max_rows cuts.
	s := batchSink(t, srv.URL, "concurrency: 1000, batch: {max_rows: 10, max_wait: 1h}")
	for i, err := range deliverAll(s, "e", 30) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	ids, sizes := rc.delivered()
	exactlyOnce(t, ids, "e", 30)
	if !slices.Equal(sizes, []int{10, 10, 10}) {
		t.Errorf("batch sizes %v, want three of 10", sizes)
	}
	for _, ct := range rc.ctypes {
		if ct != ContentTypeBatch {
			t.Errorf("content type %q", ct)
		}
	}
	if len(rc.bad) > 0 {
		t.Errorf("not valid CloudEvents batches: %v", rc.bad)
	}
}

func TestBatchCutByTimeAndByCallers(t *testing.T) {
	rc := &batchReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := batchSink(t, srv.URL, "concurrency: 1000, batch: {max_rows: 100, max_wait: 80ms}")
	start := time.Now()
	for _, err := range deliverAll(s, "a", 5) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 70*time.Millisecond {
		t.Errorf("5 of 100 events were sent after %v, before max_wait", took)
	}
	ids, sizes := rc.delivered()
	exactlyOnce(t, ids, "a", 5)
	if !slices.Equal(sizes, []int{5}) {
		t.Errorf("batch sizes %v, want one of 5", sizes)
	}

	// With every possible caller waiting (concurrency 5), nobody can add
	// to the batch: it goes at once, without waiting max_wait.
	rc2 := &batchReceiver{}
	srv2 := httptest.NewServer(rc2)
	defer srv2.Close()
	s2 := batchSink(t, srv2.URL, "concurrency: 5, batch: {max_rows: 100, max_wait: 1h}")
	done := make(chan []error)
	go func() { done <- deliverAll(s2, "b", 5) }()
	select {
	case errs := <-done:
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a batch of all callers waited for max_wait")
	}
	ids, sizes = rc2.delivered()
	exactlyOnce(t, ids, "b", 5)
	if !slices.Equal(sizes, []int{5}) {
		t.Errorf("batch sizes %v, want one of 5", sizes)
	}
}

// TestBatchRetryAfter5xx: a 503 fails every event of the batch with a
// retryable error; delivered again (as the dispatcher does), each arrives
// exactly once in the successful request.
func TestBatchRetryAfter5xx(t *testing.T) {
	rc := &batchReceiver{answer: func(n int, _ *nethttp.Request, _ int) (int, map[string]string) {
		if n == 1 {
			return 503, nil
		}
		return 200, nil
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := batchSink(t, srv.URL, "concurrency: 20, batch: {max_rows: 20, max_wait: 1h}")
	errs := deliverAll(s, "e", 20)
	for i, err := range errs {
		if err == nil || sinks.IsPermanent(err) || sinks.StatusOf(err) != 503 {
			t.Fatalf("event %d: %v; want a retryable 503", i, err)
		}
		if !strings.Contains(err.Error(), "batch of 20 events") {
			t.Errorf("error does not say it was a batch: %v", err)
		}
	}
	if ids, _ := rc.delivered(); len(ids) != 0 {
		t.Fatalf("refused batch counted as delivered: %v", ids)
	}
	for i, err := range deliverAll(s, "e", 20) {
		if err != nil {
			t.Fatalf("retry of event %d: %v", i, err)
		}
	}
	ids, sizes := rc.delivered()
	exactlyOnce(t, ids, "e", 20)
	if !slices.Equal(sizes, []int{20}) {
		t.Errorf("batch sizes %v, want one of 20", sizes)
	}
}

func TestBatchPermanentAndRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		status    int
		hdr       map[string]string
		permanent bool
		after     time.Duration
	}{
		{400, nil, true, 0},
		{429, map[string]string{"Retry-After": "7"}, false, 7 * time.Second},
		{503, map[string]string{"Retry-After": "2"}, false, 2 * time.Second},
		{408, nil, false, 0},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rc := &batchReceiver{answer: func(int, *nethttp.Request, int) (int, map[string]string) { return tc.status, tc.hdr }}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			s := batchSink(t, srv.URL, "concurrency: 8, batch: {max_rows: 8, max_wait: 1h}")
			for i, err := range deliverAll(s, "e", 8) {
				switch {
				case err == nil:
					t.Fatalf("event %d delivered", i)
				case sinks.IsPermanent(err) != tc.permanent:
					t.Errorf("event %d: permanent %v, want %v: %v", i, sinks.IsPermanent(err), tc.permanent, err)
				case sinks.StatusOf(err) != tc.status:
					t.Errorf("event %d: status %d, want %d", i, sinks.StatusOf(err), tc.status)
				case tc.permanent && !strings.Contains(err.Error(), `{"error":"refused"}`):
					t.Errorf("event %d: no body excerpt for the dead letter: %v", i, err)
				}
				if after, ok := sinks.RetryAfter(err); ok != (tc.after > 0) || after != tc.after {
					t.Errorf("event %d: Retry-After %v %v, want %v", i, after, ok, tc.after)
				}
			}
			if rc.requests != 1 {
				t.Errorf("%d requests, want 1 (the sink must not retry on its own)", rc.requests)
			}
		})
	}
}

// TestBatchTooLargeSplits: a 413 halves the batch until the receiver takes
// it; an event too large alone fails alone.
func TestBatchTooLargeSplits(t *testing.T) {
	rc := &batchReceiver{answer: func(_ int, r *nethttp.Request, items int) (int, map[string]string) {
		if items > 2 {
			return 413, nil
		}
		return 200, nil
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := batchSink(t, srv.URL, "concurrency: 8, batch: {max_rows: 8, max_wait: 1h}")
	for i, err := range deliverAll(s, "e", 8) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	ids, sizes := rc.delivered()
	exactlyOnce(t, ids, "e", 8)
	if !slices.Equal(sizes, []int{2, 2, 2, 2}) {
		t.Errorf("batch sizes %v, want four of 2", sizes)
	}
}

// TestBatchCloseFlushes: Close sends the open batch instead of dropping it,
// and later deliveries fail (retryably) instead of hanging.
func TestBatchCloseFlushes(t *testing.T) {
	rc := &batchReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := batchSink(t, srv.URL, "concurrency: 1000, batch: {max_rows: 100, max_wait: 1h}")
	done := make(chan []error)
	go func() { done <- deliverAll(s, "e", 3) }()
	time.Sleep(100 * time.Millisecond) // the three wait for a batch that cannot fill
	select {
	case <-done:
		t.Fatal("delivered before max_wait or Close")
	default:
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, err := range <-done {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	ids, _ := rc.delivered()
	exactlyOnce(t, ids, "e", 3)
	err := s.Deliver(context.Background(), sinks.Delivery{EventID: "late", Event: event("late")})
	if err == nil || sinks.IsPermanent(err) {
		t.Errorf("Deliver after Close: %v; want a retryable error", err)
	}
}

// TestBatchJSONBodies: a JSON transform's bodies go as a JSON array; a
// text body cannot and fails alone; the connection's credentials and body
// fields apply to the batch and each element. (Concurrency 2: the text
// body never waits in a batch, so the two JSON ones are every caller.)
func TestBatchJSONBodies(t *testing.T) {
	rc := &batchReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	t.Setenv("BATCH_TEST_KEY", "k-1")
	s := destSink(t, fmt.Sprintf(`
connections:
  - {name: c, type: api_key, api_key: {name: X-Key, value: "${BATCH_TEST_KEY}"}, body: {tenant: acme}}
destinations:
  - {name: d, url: %q, connection: c}
rules:
  - name: r
    targets:
      - {id: t, type: http, destination: d, concurrency: 2, batch: {max_rows: 10, max_wait: 1h}}
`, srv.URL+"/orders"))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := sinks.Delivery{EventID: fmt.Sprint(i), Event: event(fmt.Sprint(i)), Body: []byte(fmt.Sprintf(`{"order":%d}`, i)), ContentType: "application/json"}
			if i == 2 {
				d.Body, d.ContentType = []byte("order 2"), "text/plain; charset=utf-8"
			}
			errs[i] = s.Deliver(context.Background(), d)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("JSON bodies: %v, %v", errs[0], errs[1])
	}
	if !sinks.IsPermanent(errs[2]) || !strings.Contains(errs[2].Error(), "text/plain") {
		t.Errorf("text body: %v; want a permanent error naming its content type", errs[2])
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.batches) != 1 {
		t.Fatalf("%d requests: %v", len(rc.batches), rc.batches)
	}
	got := slices.Clone(rc.batches[0])
	slices.Sort(got)
	want := []string{`{"order":0,"tenant":"acme"}`, `{"order":1,"tenant":"acme"}`}
	if !slices.Equal(got, want) {
		t.Errorf("bodies %v, want %v", got, want)
	}
	if !strings.HasPrefix(rc.ctypes[0], "application/json") || rc.headers[0].Get("X-Key") != "k-1" {
		t.Errorf("content type %q, X-Key %q", rc.ctypes[0], rc.headers[0].Get("X-Key"))
	}
}

// TestBatchRateLimitCountsRequests: a destination's rate limit counts a
// batch as one request: 30 events in 3 batches under a limit of 2 requests
// a second take about a second, not 15.
func TestBatchRateLimitCountsRequests(t *testing.T) {
	rc := &batchReceiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := destSink(t, fmt.Sprintf(`
destinations:
  - {name: batch-rate, url: %q, rate_limit_per_second: 2}
rules:
  - name: r
    targets:
      - {id: t, type: http, destination: batch-rate, concurrency: 1000, batch: {max_rows: 10, max_wait: 1h}}
`, srv.URL))
	start := time.Now()
	for i, err := range deliverAll(s, "e", 30) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("30 events in batches of 10 took %v under a limit of 2 requests/s", took)
	}
	ids, sizes := rc.delivered()
	exactlyOnce(t, ids, "e", 30)
	if len(sizes) != 3 {
		t.Errorf("batch sizes %v", sizes)
	}
}
