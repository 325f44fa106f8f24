package http

import (
	"context"
	"encoding/json"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
)

const testEvent = `{"specversion":"1.0","id":"e-1","source":"erp","type":"order.created","datacontenttype":"application/json","subject":"o-7","data":{"orderId":"o-7","amount":12.5}}`

func newSink(t *testing.T, tgt config.Target) sinks.Sink {
	t.Helper()
	if tgt.ID == "" {
		tgt.ID = "t"
	}
	tgt.Type = "http"
	s, err := sinks.New(tgt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStructuredModeSendsEventAsIs(t *testing.T) {
	var gotBody []byte
	var gotCT, gotAuth string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotCT = r.Header.Get("Content-Type")
		gotAuth = r.Header.Get("Authorization")
		w.WriteHeader(204)
	}))
	defer srv.Close()
	s := newSink(t, config.Target{URL: srv.URL, Headers: map[string]string{"Authorization": "Bearer x"}})
	if err := s.Deliver(context.Background(), sinks.Delivery{EventID: "e-1", Event: []byte(testEvent)}); err != nil {
		t.Fatal(err)
	}
	if string(gotBody) != testEvent {
		t.Errorf("body = %s", gotBody)
	}
	if !strings.HasPrefix(gotCT, "application/cloudevents+json") {
		t.Errorf("content-type = %q", gotCT)
	}
	if gotAuth != "Bearer x" {
		t.Errorf("configured header not sent: %q", gotAuth)
	}
}

func TestBinaryModeSendsDataAsBody(t *testing.T) {
	var hdr nethttp.Header
	var body []byte
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		hdr = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	s := newSink(t, config.Target{URL: srv.URL, Mode: "binary", Method: "PUT"})
	if err := s.Deliver(context.Background(), sinks.Delivery{EventID: "e-1", Event: []byte(testEvent)}); err != nil {
		t.Fatal(err)
	}
	if hdr.Get("Ce-Id") != "e-1" || hdr.Get("Ce-Source") != "erp" || hdr.Get("Ce-Type") != "order.created" || hdr.Get("Ce-Subject") != "o-7" {
		t.Errorf("ce headers = %v", hdr)
	}
	if hdr.Get("Content-Type") != "application/json" {
		t.Errorf("content-type = %q", hdr.Get("Content-Type"))
	}
	var data map[string]any
	if err := json.Unmarshal(body, &data); err != nil || data["orderId"] != "o-7" {
		t.Errorf("body = %s (%v)", body, err)
	}
}

func TestFailureClassification(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		permanent  bool
		after      time.Duration
	}{
		{500, "", false, 0},
		{502, "", false, 0},
		{408, "", false, 0},
		{429, "7", false, 7 * time.Second},
		{503, "2", false, 2 * time.Second},
		{429, "", false, 0},
		{400, "", true, 0},
		{401, "", true, 0},
		{404, "", true, 0},
		{413, "", true, 0},
	}
	for _, c := range cases {
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			if c.retryAfter != "" {
				w.Header().Set("Retry-After", c.retryAfter)
			}
			w.WriteHeader(c.status)
			io.WriteString(w, "nope")
		}))
		s := newSink(t, config.Target{URL: srv.URL})
		err := s.Deliver(context.Background(), sinks.Delivery{EventID: "e", Event: []byte(testEvent)})
		srv.Close()
		if err == nil {
			t.Fatalf("%d: no error", c.status)
		}
		if sinks.IsPermanent(err) != c.permanent {
			t.Errorf("%d: permanent = %v, want %v (%v)", c.status, sinks.IsPermanent(err), c.permanent, err)
		}
		after, ok := sinks.RetryAfter(err)
		if ok != (c.after > 0) || after != c.after {
			t.Errorf("%d: retry-after = %v %v, want %v", c.status, after, ok, c.after)
		}
		if sinks.StatusOf(err) != c.status {
			t.Errorf("%d: status not carried: %d", c.status, sinks.StatusOf(err))
		}
		if !strings.Contains(err.Error(), "nope") {
			t.Errorf("%d: error does not carry the answer body: %v", c.status, err)
		}
	}
}

func TestNetworkErrorAndTimeoutAreRetryable(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {}))
	url := srv.URL
	srv.Close() // nothing listens any more
	s := newSink(t, config.Target{URL: url})
	err := s.Deliver(context.Background(), sinks.Delivery{Event: []byte(testEvent)})
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("connection refused should be retryable, got %v", err)
	}

	var calls atomic.Int32
	slow := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		calls.Add(1)
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	s = newSink(t, config.Target{URL: slow.URL, Timeout: config.Duration(50 * time.Millisecond)})
	start := time.Now()
	err = s.Deliver(context.Background(), sinks.Delivery{Event: []byte(testEvent)})
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("timeout should be retryable, got %v", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("timeout not applied: took %v", time.Since(start))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d, ok := parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now); !ok || d != 30*time.Second {
		t.Errorf("http date: %v %v", d, ok)
	}
	for _, bad := range []string{"", "-1", "soon"} {
		if _, ok := parseRetryAfter(bad, now); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTransformedBodyIsSentAsIs(t *testing.T) {
	var body []byte
	var ct string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ = io.ReadAll(r.Body)
		ct = r.Header.Get("Content-Type")
	}))
	defer srv.Close()
	s := newSink(t, config.Target{URL: srv.URL, Mode: "binary"})
	err := s.Deliver(context.Background(), sinks.Delivery{EventID: "e-1", Event: []byte(testEvent), Body: []byte("order o-7 paid"), ContentType: "text/plain; charset=utf-8"})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "order o-7 paid" || ct != "text/plain; charset=utf-8" {
		t.Errorf("got %q (%s)", body, ct)
	}
}
