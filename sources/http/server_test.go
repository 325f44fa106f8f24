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
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/busbar/busbar/pipeline"
)

type memBus struct {
	mu   sync.Mutex
	recs []pipeline.Record
	fail error
}

func (m *memBus) HasBus(b string) bool { return b == "default" || b == "retail" }
func (m *memBus) Publish(_ context.Context, _ string, recs []pipeline.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.recs = append(m.recs, recs...)
	return nil
}

var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, bus *memBus, opts Options) *httptest.Server {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.Now = func() time.Time { return fixedNow }
	srv := httptest.NewServer(NewHandler(bus, opts))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, ctype string, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := nethttp.NewRequest("POST", url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func decoded(t *testing.T, rec pipeline.Record) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Event, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStructuredMode(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{})
	code, out := post(t, srv.URL+"/v1/buses/retail/events", "application/cloudevents+json",
		`{"specversion":"1.0","source":"erp","type":"order.created","subject":"o-1","orderchannel":"web","data":{"orderId":"o-1","amount":99.5}}`, nil)
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if len(bus.recs) != 1 || out["id"] != bus.recs[0].ID || bus.recs[0].ID == "" {
		t.Fatalf("answer %v, stored %v", out, bus.recs)
	}
	ev := decoded(t, bus.recs[0])
	if ev["time"] != "2026-11-22T10:00:00Z" || ev[pipeline.ExtIngestTime] != "2026-11-22T10:00:00Z" {
		t.Errorf("time/ingest time not defaulted: %v", ev)
	}
	if ev["orderchannel"] != "web" || ev["subject"] != "o-1" {
		t.Errorf("extension or subject lost: %v", ev)
	}
	if d, _ := ev["data"].(map[string]any); d["orderId"] != "o-1" {
		t.Errorf("data lost: %v", ev)
	}
}

func TestProducerIDAndTimeAreKept(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{})
	code, out := post(t, srv.URL+"/v1/buses/retail/events", "application/cloudevents+json",
		`{"specversion":"1.0","id":"mine-1","time":"2025-01-02T03:04:05Z","source":"erp","type":"t"}`, nil)
	if code != 200 || out["id"] != "mine-1" {
		t.Fatalf("%d %v", code, out)
	}
	if ev := decoded(t, bus.recs[0]); ev["time"] != "2025-01-02T03:04:05Z" {
		t.Errorf("producer time replaced: %v", ev["time"])
	}
}

func TestBinaryMode(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{})
	code, out := post(t, srv.URL+"/v1/buses/default/events", "application/json", `{"sku":"A1","qty":3}`, map[string]string{
		"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "wms", "ce-type": "stock.in", "ce-warehouse": "sh",
	})
	if code != 200 || out["id"] != "b-1" {
		t.Fatalf("%d %v", code, out)
	}
	ev := decoded(t, bus.recs[0])
	if ev["source"] != "wms" || ev["warehouse"] != "sh" || ev["datacontenttype"] != "application/json" {
		t.Errorf("binary attributes lost: %v", ev)
	}
	if d, _ := ev["data"].(map[string]any); d["sku"] != "A1" {
		t.Errorf("binary body not kept as JSON data: %v", ev["data"])
	}
}

func TestBatchMode(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{})
	code, out := post(t, srv.URL+"/v1/buses/default/events", "application/cloudevents-batch+json",
		`[{"specversion":"1.0","id":"1","source":"a","type":"x"},{"specversion":"1.0","id":"2","source":"a","type":"y","data":"text"}]`, nil)
	if code != 200 || len(bus.recs) != 2 {
		t.Fatalf("%d %v", code, out)
	}
	if ids := out["ids"].([]any); ids[0] != "1" || ids[1] != "2" {
		t.Errorf("ids = %v", ids)
	}
	// one invalid event: nothing published, the bad index named
	code, out = post(t, srv.URL+"/v1/buses/default/events", "application/cloudevents-batch+json",
		`[{"specversion":"1.0","id":"3","source":"a","type":"x"},{"specversion":"1.0","id":"4","type":"y"}]`, nil)
	if code != 400 || len(bus.recs) != 2 {
		t.Fatalf("%d %v", code, out)
	}
	entries := out["error"].(map[string]any)["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["index"].(float64) != 1 || entries[0].(map[string]any)["field"] != "source" {
		t.Errorf("entries = %v", entries)
	}
}

func TestPutEvents(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{})
	body := `{"Entries":[
		{"Source":"crm","DetailType":"customer.updated","Detail":"{\"customerId\":\"c-1\"}","Resources":["crm:c-1"],"Subject":"c-1"},
		{"Source":"erp","DetailType":"order.created","Detail":{"orderId":"o-2"},"Time":"2026-11-01T00:00:00Z"},
		{"Source":"erp","DetailType":"order.created","Detail":"{not json"},
		{"Source":"","DetailType":"x","Detail":"{}"},
		{"Source":"erp","DetailType":"x","Detail":"{}","Colour":"red"},
		{"Source":"erp","DetailType":"x","Detail":"{}","Time":"yesterday"},
		{"Source":"erp","DetailType":"x","Detail":"{}","EventBusName":"other"}
	]}`
	code, out := post(t, srv.URL+"/v1/buses/retail/put-events", "application/json", body, nil)
	if code != 200 {
		t.Fatalf("%d %v", code, out)
	}
	if out["FailedEntryCount"].(float64) != 5 || len(bus.recs) != 2 {
		t.Fatalf("answer %v, stored %d", out, len(bus.recs))
	}
	entries := out["Entries"].([]any)
	wantCodes := []string{"", "", CodeMalformedDetail, CodeInvalidArgument, CodeInvalidArgument, CodeInvalidArgument, CodeInvalidArgument}
	for i, want := range wantCodes {
		e := entries[i].(map[string]any)
		if want == "" {
			if e["EventId"] == nil || e["ErrorCode"] != nil {
				t.Errorf("entry %d: %v", i, e)
			}
			continue
		}
		if e["ErrorCode"] != want || e["ErrorMessage"] == "" {
			t.Errorf("entry %d: %v, want %s", i, e, want)
		}
	}
	if !strings.Contains(entries[4].(map[string]any)["ErrorMessage"].(string), "Colour") {
		t.Errorf("unknown field not named: %v", entries[4])
	}
	ev := decoded(t, bus.recs[0])
	if ev["type"] != "customer.updated" || ev["resources"] != "crm:c-1" || ev["subject"] != "c-1" {
		t.Errorf("converted event: %v", ev)
	}
	if d, _ := ev["data"].(map[string]any); d["customerId"] != "c-1" {
		t.Errorf("detail not converted: %v", ev["data"])
	}
}

func TestPutEventsPublishFailureFailsEntries(t *testing.T) {
	bus := &memBus{fail: errors.New("nats: timeout")}
	srv := newTestServer(t, bus, Options{})
	code, out := post(t, srv.URL+"/v1/buses/retail/put-events", "application/json",
		`{"Entries":[{"Source":"a","DetailType":"b","Detail":"{}"}]}`, nil)
	if code != 200 || out["FailedEntryCount"].(float64) != 1 {
		t.Fatalf("%d %v", code, out)
	}
	if e := out["Entries"].([]any)[0].(map[string]any); e["ErrorCode"] != CodeInternalFailure {
		t.Errorf("%v", e)
	}
}

func TestBadInput(t *testing.T) {
	bus := &memBus{}
	srv := newTestServer(t, bus, Options{MaxBatchEntries: 5, MaxRequestBytes: 512 << 10})
	big := strings.Repeat("x", 300<<10)
	manyPut := `{"Entries":[` + strings.TrimSuffix(strings.Repeat(`{"Source":"a","DetailType":"b","Detail":"{}"},`, 6), ",") + `]}`
	manyBatch := `[` + strings.TrimSuffix(strings.Repeat(`{"specversion":"1.0","source":"a","type":"b"},`, 6), ",") + `]`
	cases := []struct {
		name, path, ctype, body string
		hdr                     map[string]string
		status                  int
		code, field, mention    string
	}{
		{"malformed JSON", "default/events", "application/cloudevents+json", `{"specversion":"1.0",`, nil, 400, CodeMalformedJSON, "", "byte"},
		{"not an object", "default/events", "application/cloudevents+json", `[1]`, nil, 400, CodeInvalidEvent, "", "object"},
		{"empty body", "default/events", "application/cloudevents+json", ``, nil, 400, CodeMalformedJSON, "", "empty"},
		{"missing source", "default/events", "application/cloudevents+json", `{"specversion":"1.0","type":"t"}`, nil, 400, CodeInvalidEvent, "source", "required"},
		{"missing type", "default/events", "application/cloudevents+json", `{"specversion":"1.0","source":"s"}`, nil, 400, CodeInvalidEvent, "type", "required"},
		{"missing specversion", "default/events", "application/cloudevents+json", `{"source":"s","type":"t"}`, nil, 400, CodeInvalidEvent, "specversion", "1.0"},
		{"wrong specversion", "default/events", "application/cloudevents+json", `{"specversion":"0.3","source":"s","type":"t"}`, nil, 400, CodeInvalidEvent, "specversion", "0.3"},
		{"wrong type of id", "default/events", "application/cloudevents+json", `{"specversion":"1.0","id":5,"source":"s","type":"t"}`, nil, 400, CodeInvalidEvent, "id", "string"},
		{"object attribute", "default/events", "application/cloudevents+json", `{"specversion":"1.0","source":{"a":1},"type":"t"}`, nil, 400, CodeInvalidEvent, "source", "object"},
		{"300 KiB event", "default/events", "application/cloudevents+json", `{"specversion":"1.0","source":"s","type":"t","data":"` + big + `"}`, nil, 413, CodeEventTooLarge, "", "256 KiB"},
		{"unknown bus", "nope/events", "application/cloudevents+json", `{}`, nil, 404, CodeUnknownBus, "", "nope"},
		{"unknown bus put-events", "nope/put-events", "application/json", `{}`, nil, 404, CodeUnknownBus, "", "nope"},
		{"no content type", "default/events", "text/plain", `hello`, nil, 415, CodeUnsupportedMedia, "", "ce-specversion"},
		{"binary wrong specversion", "default/events", "application/json", `{}`, map[string]string{"ce-specversion": "0.1", "ce-id": "1", "ce-source": "s", "ce-type": "t"}, 400, CodeInvalidEvent, "", ""},
		{"batch too many", "default/events", "application/cloudevents-batch+json", manyBatch, nil, 413, CodeTooManyEntries, "", "limit is 5"},
		{"batch not array", "default/events", "application/cloudevents-batch+json", `{"a":1}`, nil, 400, CodeMalformedJSON, "", "array"},
		{"put-events too many", "default/put-events", "application/json", manyPut, nil, 413, CodeTooManyEntries, "Entries", "limit is 5"},
		{"put-events unknown top field", "default/put-events", "application/json", `{"Entries":[],"X":1}`, nil, 400, CodeMalformedJSON, "", `"X"`},
		{"put-events wrong type", "default/put-events", "application/json", `{"Entries":{}}`, nil, 400, CodeMalformedJSON, "", "Entries"},
		{"put-events empty", "default/put-events", "application/json", `{"Entries":[]}`, nil, 400, CodeInvalidArgument, "Entries", "empty"},
		{"put-events trailing data", "default/put-events", "application/json", `{"Entries":[]} {"x":1}`, nil, 400, CodeMalformedJSON, "", "after"},
		{"put-events malformed", "default/put-events", "application/json", `{"Entries":[{"Source":"a",}]}`, nil, 400, CodeMalformedJSON, "", "at byte 27"},
		{"request too large", "default/events", "application/cloudevents-batch+json", `[` + strings.Repeat(" ", 600<<10) + `]`, nil, 413, CodeRequestTooLarge, "", "bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := post(t, srv.URL+"/v1/buses/"+c.path, c.ctype, c.body, c.hdr)
			e, _ := out["error"].(map[string]any)
			if code != c.status || e == nil || e["code"] != c.code {
				t.Fatalf("got %d %v, want %d %s", code, out, c.status, c.code)
			}
			if c.field != "" && e["field"] != c.field {
				t.Errorf("field = %v, want %s (%v)", e["field"], c.field, e)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, c.mention) {
				t.Errorf("message %q does not mention %q", msg, c.mention)
			}
		})
	}
	if len(bus.recs) != 0 {
		t.Errorf("bad input reached the bus: %d records", len(bus.recs))
	}
	// and the server still serves
	if code, _ := post(t, srv.URL+"/v1/buses/default/events", "application/cloudevents+json", `{"specversion":"1.0","source":"s","type":"t"}`, nil); code != 200 {
		t.Fatalf("server stopped serving: %d", code)
	}
}

func TestWrongMethodAndPublishFailure(t *testing.T) {
	bus := &memBus{fail: fmt.Errorf("down")}
	srv := newTestServer(t, bus, Options{})
	resp, err := nethttp.Get(srv.URL + "/v1/buses/default/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	code, out := post(t, srv.URL+"/v1/buses/default/events", "application/cloudevents+json", `{"specversion":"1.0","source":"s","type":"t"}`, nil)
	if code != 503 || out["error"].(map[string]any)["code"] != CodeBusUnavailable {
		t.Fatalf("%d %v", code, out)
	}
}

func TestReadAllAnnouncedLength(t *testing.T) {
	body := strings.Repeat("x", 5000)
	for _, announced := range []int64{-1, 0, 10, 4999, 5000, 6000, 1 << 20} {
		got, err := readAll(iotest.OneByteReader(strings.NewReader(body)), announced)
		if err != nil || string(got) != body {
			t.Errorf("announced %d: got %d bytes, err %v; want all %d", announced, len(got), err, len(body))
		}
	}
	_, err := readAll(iotest.ErrReader(errors.New("boom")), 10)
	if err == nil || err.Error() != "boom" {
		t.Errorf("read error: got %v, want boom", err)
	}
}
