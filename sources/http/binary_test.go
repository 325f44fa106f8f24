package http

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/busbar/busbar/pipeline"
)

// A binary-mode request that binaryAsStructured takes is stored byte for
// byte as the CloudEvents SDK's binary reader stored it; the others are
// left to that reader.
func TestBinaryMatchesSDK(t *testing.T) {
	h := NewHandler(&memBus{}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return fixedNow }})
	base := map[string]string{"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "wms", "ce-type": "stock.in"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name  string
		ct    string
		hdr   map[string]string
		body  string
		takes bool // binaryAsStructured takes it
	}{
		{"plain", "application/json", base, `{"sku":"A1","qty":3}`, true},
		{"all attributes", "application/json", with("ce-subject", "SO-1", "ce-time", "2026-11-22T18:00:00.5+08:00", "ce-dataschema", "https://x/s.json", "ce-warehouse", "sh", "ce-traceparent", "00-abc-01"), `{"a":[1,{"b":null}],"c":"<&>"}`, true},
		{"charset", "application/json; charset=utf-8", base, `{"x":1}`, true},
		{"spaced body", "application/json", base, " {\n \"x\" : 1 }\n", true},
		{"array body", "application/json", base, `[1,2]`, true},
		{"number-like extension", "application/json", with("ce-n", "5"), `{}`, true},
		{"source URL", "application/json", with("ce-source", "https://shop.example.com/orders?x=1"), `{}`, true},
		{"uppercase header", "application/json", with("CE-Region", "eu"), `{}`, true},
		{"percent-encoded", "application/json", with("ce-subject", "a%20b"), `{}`, false},
		{"quote in value", "application/json", with("ce-subject", `say "hi"`), `{}`, false},
		{"invalid UTF-8 value", "application/json", with("ce-subject", "a\xffb"), `{}`, false},
		{"text body", "text/plain", base, `hello`, false},
		{"malformed JSON body", "application/json", base, `{"x":`, false},
		{"empty body", "application/json", base, ``, false},
		{"bad extension name", "application/json", with("ce-my-ext", "x"), `{}`, false},
		{"datacontenttype header", "application/json", with("ce-datacontenttype", "application/json"), `{}`, false},
		{"no source", "application/json", with("ce-source", ""), `{}`, true},
		{"wrong specversion", "application/json", with("ce-specversion", "0.1"), `{}`, true},
		{"bad time", "application/json", with("ce-time", "yesterday"), `{}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/buses/default/events", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ct)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			raw, ok := binaryAsStructured(req.Header, []byte(c.body))
			if ok != c.takes {
				t.Fatalf("binaryAsStructured took it: %v, want %v (%s)", ok, c.takes, raw)
			}
			var ref pipeline.Record
			var refErr error
			if ev, err := cehttp.NewEventFromHTTPRequest(req); err != nil {
				refErr = err
			} else {
				ref, refErr = h.prepare(ev)
			}
			if !ok {
				return
			}
			fast, err := pipeline.NormalizeJSON(raw, fixedNow)
			if (err == nil) != (refErr == nil) {
				t.Fatalf("fast: %v\nsdk:  %v", err, refErr)
			}
			if err != nil {
				return // the handler answers invalid ones through the SDK reader
			}
			if !bytes.Equal(fast.Event, ref.Event) || fast.ID != ref.ID || fast.IngestTime != ref.IngestTime {
				t.Fatalf("fast: %s\nsdk:  %s", fast.Event, ref.Event)
			}
		})
	}
}

// BenchmarkBinaryMode: one binary-mode order event through the handler (no
// network).
func BenchmarkBinaryMode(b *testing.B) {
	h := NewHandler(&discardBus{}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	body := `{"orderId":"SO-1","customer":{"id":"C-7","region":"eu-west"},"lines":[{"sku":"A-1","qty":2,"price":19.9},{"sku":"B-2","qty":1,"price":5}],"amount":44.8,"currency":"EUR"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/buses/retail/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", "b-1")
		req.Header.Set("Ce-Source", "erp.sap")
		req.Header.Set("Ce-Type", "order.created")
		req.Header.Set("Ce-Subject", "SO-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
