package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// bodySink records the bodies and content types it receives.
type bodySink struct {
	mu     sync.Mutex
	bodies []string
	ctypes []string
}

func (b *bodySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bodies = append(b.bodies, string(body))
	b.ctypes = append(b.ctypes, r.Header.Get("Content-Type"))
}

func (b *bodySink) got() ([]string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bodies...), append([]string(nil), b.ctypes...)
}

// TestTransformsThroughTheEventPath: one event, three targets with three
// transforms; each receives exactly the expected body and content type.
func TestTransformsThroughTheEventPath(t *testing.T) {
	finance, chat, analytics := &bodySink{}, &bodySink{}, &bodySink{}
	fURL, _ := listen(t, finance)
	cURL, _ := listen(t, chat)
	aURL, _ := listen(t, analytics)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
rules:
  - name: paid-orders
    pattern: {type: ["order.created"]}
    targets:
      - id: finance
        type: http
        url: %q
        transform:
          paths: {id: $.data.orderId, amount: $.data.amount, note: $.data.note}
          template: '{"orderId": <id>, "amount": <amount>, "note": <note>, "rule": "<busbar.rule-name>"}'
      - id: chat
        type: http
        url: %q
        transform:
          paths: {id: $.data.orderId, city: $.data.customer.city}
          template: 'New order <id> from <city>'
      - id: analytics
        type: http
        url: %q
        transform:
          form: data
          mask:
            - {path: $.data.customer.phone, action: partial, keep_first: 3, keep_last: 4}
            - {path: $.data.customer.name, action: remove}
`, fURL, cURL, aURL))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	mustPost(t, base+"/v1/buses/default/events", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"o-1","source":"erp","type":"order.created",
		"data":{"orderId":"SO-1","amount":12345678901234567890,"note":"say \"hi\"\n你好","customer":{"name":"Li Lei","phone":"13812345678","city":"Shanghai"}}}`), nil)

	want := []struct {
		name  string
		s     *bodySink
		body  string
		ctype string
	}{
		{"finance", finance, `{"orderId":"SO-1","amount":12345678901234567890,"note":"say \"hi\"\n你好","rule":"paid-orders"}`, "application/json"},
		{"chat", chat, `New order SO-1 from Shanghai`, "text/plain; charset=utf-8"},
		{"analytics", analytics, `{"orderId":"SO-1","amount":12345678901234567890,"note":"say \"hi\"\n你好","customer":{"phone":"138****5678","city":"Shanghai"}}`, "application/json"},
	}
	for _, w := range want {
		waitFor(t, 30*time.Second, w.name+" to receive the event", func() (bool, string) {
			b, _ := w.s.got()
			return len(b) > 0, "nothing yet"
		})
		bodies, ctypes := w.s.got()
		if len(bodies) != 1 || bodies[0] != w.body || ctypes[0] != w.ctype {
			t.Errorf("%s got %q (%s), want %q (%s)", w.name, bodies, ctypes, w.body, w.ctype)
		}
	}
}
