package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/busbar/busbar/pipeline"
)

// entrySDK is how entries were converted before entryEvent: through the
// CloudEvents SDK. It is the reference the fast path is held to.
func (h *Handler) entrySDK(e *PutEventsEntry, detail []byte) (pipeline.Record, string, error) {
	ev := event.New()
	ev.SetSource(e.Source)
	ev.SetType(e.DetailType)
	if e.Subject != "" {
		ev.SetSubject(e.Subject)
	}
	if e.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			return pipeline.Record{}, CodeInvalidArgument, err
		}
		ev.SetTime(t)
	}
	if len(e.Resources) > 0 {
		ev.SetExtension("resources", strings.Join(e.Resources, ","))
	}
	if e.TraceHeader != "" {
		ev.SetExtension("traceheader", e.TraceHeader)
	}
	if err := ev.SetData(event.ApplicationJSON, json.RawMessage(detail)); err != nil {
		return pipeline.Record{}, CodeMalformedDetail, err
	}
	rec, err := h.prepare(&ev)
	if err != nil {
		code, msg, _ := classify(err)
		return pipeline.Record{}, code, errors.New(msg)
	}
	return rec, "", nil
}

var generatedID = regexp.MustCompile(`"id":"[^"]*"`)

// Every entry becomes byte for byte the event the SDK made of it (but for
// the generated id), or fails with the same code and message. One message
// is better than before: a source that is not a URI reference was
// reported as missing (the SDK's SetSource drops it); it is now named as
// unparsable, as /events does.
func TestPutEventsEntryMatchesSDK(t *testing.T) {
	h := NewHandler(&memBus{}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return fixedNow }})
	entries := []string{
		`{"Source":"erp","DetailType":"order.created","Detail":{"orderId":"o-1","amount":12.5,"items":[1,2]}}`,
		`{"Source":"erp.sap","DetailType":"order.created","Detail":"{\"orderId\":\"o-2\"}","Subject":"o-2","Resources":["erp:o-2","crm:c-9"],"TraceHeader":"Root=1-abc"}`,
		`{"Source":"erp","DetailType":"x","Detail":{},"Time":"2026-11-01T00:00:00Z"}`,
		`{"Source":"erp","DetailType":"x","Detail":{},"Time":"2026-11-22T18:00:00.123456789+08:00"}`,
		`{"Source":"erp","DetailType":"x","Detail":{ "a" : [ 1 , { "b" : null } ] }}`,
		`{"Source":"erp","DetailType":"x","Detail":"  {\"spaced\": true}  "}`,
		`{"Source":"crm <sales> & co","DetailType":"t\u00e9st \"quoted\"","Detail":{"html":"<b>&</b>"},"Subject":"line\nbreak"}`,
		`{"Source":"https://shop.example.com/orders?x=1","DetailType":"order.paid","Detail":{"unicode":"\u2028 ok 😀"}}`,
		`{"Source":"erp","DetailType":"x","Detail":{"big":123456789012345678901234567890,"f":1e400}}`,
		`{"Source":"%zz","DetailType":"x","Detail":{}}`,
		`{"Source":"erp","DetailType":"x","Detail":{"d":"` + strings.Repeat("x", pipeline.MaxEventSize) + `"}}`,
		`{"Source":"erp","DetailType":"x","Detail":{},"EventBusName":"retail"}`,
	}
	for i, raw := range entries {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			fast, fcode, ferr := h.entry(json.RawMessage(raw), "retail")
			var e PutEventsEntry
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				t.Fatal(err)
			}
			detail, err := detailJSON(e.Detail)
			if err != nil {
				t.Fatal(err)
			}
			ref, rcode, rerr := h.entrySDK(&e, detail)
			if ferr != nil && strings.Contains(raw, `"%zz"`) {
				if fcode != CodeInvalidEvent || !strings.Contains(ferr.Error(), "%zz") || rerr == nil {
					t.Fatalf("bad source: %q %v (sdk: %v)", fcode, ferr, rerr)
				}
				return
			}
			if (ferr == nil) != (rerr == nil) || fcode != rcode || ferr != nil && ferr.Error() != rerr.Error() {
				t.Fatalf("fast: %q %v\nsdk:  %q %v", fcode, ferr, rcode, rerr)
			}
			if ferr != nil {
				return
			}
			f := generatedID.ReplaceAllString(string(fast.Event), `"id":"ID"`)
			r := generatedID.ReplaceAllString(string(ref.Event), `"id":"ID"`)
			if f != r || fast.IngestTime != ref.IngestTime || fast.ID == "" {
				t.Fatalf("fast: %s\nsdk:  %s", f, r)
			}
		})
	}
}

// BenchmarkPutEvents: one PutEvents request of 10 order entries through the
// handler (no network), per entry.
func BenchmarkPutEvents(b *testing.B) {
	h := NewHandler(&discardBus{}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var sb strings.Builder
	sb.WriteString(`{"Entries":[`)
	for i := range 10 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"Source":"erp.sap","DetailType":"order.created","Subject":"SO-%d","Resources":["erp:SO-%d"],"Detail":"{\"orderId\":\"SO-%d\",\"customer\":{\"id\":\"C-7\",\"region\":\"eu-west\"},\"lines\":[{\"sku\":\"A-1\",\"qty\":2,\"price\":19.9},{\"sku\":\"B-2\",\"qty\":1,\"price\":5}],\"amount\":44.8,\"currency\":\"EUR\"}"}`, i, i, i)
	}
	sb.WriteString(`]}`)
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/buses/retail/put-events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != nethttp.StatusOK || strings.Contains(w.Body.String(), "ErrorCode") {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10/1000, "µs/entry")
}

type discardBus struct{}

func (discardBus) HasBus(string) bool                                             { return true }
func (discardBus) Publish(_ context.Context, _ string, _ []pipeline.Record) error { return nil }
