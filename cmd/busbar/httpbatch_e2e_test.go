package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// TestHTTPTargetBatches: an http target with batch: receives all of 1,000
// events, exactly once each, in CloudEvents batch requests.
func TestHTTPTargetBatches(t *testing.T) {
	const n = 1000
	got := newIDCounter()
	var mu sync.Mutex
	var requests, largest int
	var wrong []string
	url, _ := listen(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		evs, err := cehttp.NewEventsFromHTTPRequest(r)
		mu.Lock()
		defer mu.Unlock()
		if !strings.HasPrefix(ct, "application/cloudevents-batch+json") || err != nil {
			wrong = append(wrong, fmt.Sprintf("%s: %v", ct, err))
			w.WriteHeader(400)
			return
		}
		requests++
		largest = max(largest, len(evs))
		for _, e := range evs {
			got.add(e.ID())
		}
	}))
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
rules:
  - name: all
    targets:
      - {id: batched, type: http, url: %q, batch: {max_rows: 50, max_wait: 20ms}}
`, url+"/events"))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	publishN(t, base, "default", "b", n, func(i int) map[string]any { return map[string]any{"n": i} }, nil)
	waitFor(t, 60*time.Second, "1000 events at the target", func() (bool, string) {
		return got.count() == n, fmt.Sprintf("%d delivered", got.count())
	})
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show
	got.onceEach(t, "b", n)
	mu.Lock()
	defer mu.Unlock()
	if len(wrong) > 0 {
		t.Errorf("%d requests were not CloudEvents batches: %v", len(wrong), wrong[0])
	}
	if requests >= n/2 || largest < 2 || largest > 50 {
		t.Errorf("%d requests for %d events, the largest of %d; want batches of up to 50", requests, n, largest)
	}
	t.Logf("%d events in %d requests, the largest of %d", n, requests, largest)
}
