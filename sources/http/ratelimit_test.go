package http

import (
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A bus's rate limit refuses what is over it, whole requests at a time,
// with 429 + Retry-After (nothing of the request published); a request
// larger than the burst gets 413; other buses are not limited; tokens
// come back with time.
func TestBusRateLimit(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{RateLimits: map[string]RateLimit{"retail": {PerSecond: 2, Burst: 5}}})
	ev := func(i int) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"e-%d","source":"erp","type":"order.created"}`, i)
	}
	url := srv.URL + "/v1/buses/retail/events"

	code, out := post(t, url, mediaBatch, "["+ev(1)+","+ev(2)+","+ev(3)+"]", nil)
	if code != 200 {
		t.Fatalf("first batch: %d %v", code, out)
	}
	// 3 of 5 tokens used: a batch of 3 does not fit for another 500 ms and is
	// refused whole.
	resp := rawPost(t, url, mediaBatch, "["+ev(4)+","+ev(5)+","+ev(6)+"]")
	if resp.code != 429 || !strings.Contains(resp.body, CodeThrottled) || !strings.Contains(resp.body, `takes 2 events/s (burst 5)`) {
		t.Fatalf("over the rate: %d %s", resp.code, resp.body)
	}
	if s, err := strconv.Atoi(resp.retryAfter); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", resp.retryAfter)
	}
	if len(bus.recs) != 3 {
		t.Fatalf("stored %d events, want 3 (nothing of the refused batch)", len(bus.recs))
	}
	// More than the burst can never pass: 413, not a retry loop.
	var many []string
	for i := range 6 {
		many = append(many, ev(10+i))
	}
	if resp := rawPost(t, url, mediaBatch, "["+strings.Join(many, ",")+"]"); resp.code != 413 || !strings.Contains(resp.body, "rate_limit_burst") {
		t.Fatalf("batch over the burst: %d %s", resp.code, resp.body)
	}
	// PutEvents is refused whole too.
	put := `{"Entries":[{"Source":"erp","DetailType":"x","Detail":"{}"},{"Source":"erp","DetailType":"x","Detail":"{}"},{"Source":"erp","DetailType":"x","Detail":"{}"}]}`
	if resp := rawPost(t, srv.URL+"/v1/buses/retail/put-events", "application/json", put); resp.code != 429 || !strings.Contains(resp.body, CodeThrottled) {
		t.Fatalf("PutEvents over the rate: %d %s", resp.code, resp.body)
	}
	// Another bus has no limit.
	for i := range 10 {
		if code, out := post(t, srv.URL+"/v1/buses/default/events", mediaStructured, ev(100+i), nil); code != 200 {
			t.Fatalf("unlimited bus: %d %v", code, out)
		}
	}
	// At 2 events/s the 2 tokens left become 4 within a second.
	time.Sleep(1200 * time.Millisecond)
	if code, out := post(t, url, mediaBatch, "["+ev(7)+","+ev(8)+","+ev(9)+","+ev(10)+"]", nil); code != 200 {
		t.Fatalf("after the refill: %d %v", code, out)
	}
	if len(bus.recs) != 3+10+4 {
		t.Fatalf("stored %d events, want 17", len(bus.recs))
	}
}

type answer struct {
	code       int
	body       string
	retryAfter string
}

func rawPost(t *testing.T, url, ctype, body string) answer {
	t.Helper()
	resp, err := nethttp.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header.Get("Retry-After")}
}
