package main

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// A bus's rate_limit_per_second reaches the ingest API of busbar serve:
// past its burst a producer gets 429 ThrottlingException with Retry-After;
// another bus is not limited.
func TestServeBusRateLimit(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `
buses:
  - name: orders
    rate_limit_per_second: 1
    rate_limit_burst: 2
`)
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	ev := []byte(`{"specversion":"1.0","id":"x","source":"erp","type":"order.created"}`)
	for range 2 {
		mustPost(t, base+"/v1/buses/orders/events", "application/cloudevents+json", ev, nil)
	}
	resp, err := http.Post(base+"/v1/buses/orders/events", "application/cloudevents+json", bytes.NewReader(ev))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"ThrottlingException"`) {
		t.Fatalf("third event within a second: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	for range 5 {
		mustPost(t, base+"/v1/buses/default/events", "application/cloudevents+json", ev, nil)
	}
}
