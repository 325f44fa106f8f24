package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/busbar/busbar/pipeline"
)

// oldIngest is how the handler answered structured and batch mode before
// the one-pass path (pipeline.NormalizeJSON): checkJSON, json.Unmarshal of
// the batch into []json.RawMessage, then per event decode, Normalize and
// Encode. It returns the status, the error answer and the published events.
func oldIngest(batch bool, body []byte, max int) (int, APIError, []pipeline.Record) {
	if err := checkJSON(body); err != nil {
		return 400, APIError{Code: CodeMalformedJSON, Message: err.Error()}, nil
	}
	one := func(raw []byte) (pipeline.Record, error) { return pipeline.NormalizeSDK(raw, fixedNow) }
	if !batch {
		rec, err := one(body)
		if err != nil {
			code, msg, field := classify(err)
			status := 400
			if code == CodeEventTooLarge {
				status = 413
			}
			return status, APIError{Code: code, Message: msg, Field: field}, nil
		}
		return 200, APIError{}, []pipeline.Record{rec}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return 400, APIError{Code: CodeMalformedJSON, Message: "batch mode expects a JSON array of structured events"}, nil
	}
	if len(raws) == 0 {
		return 400, APIError{Code: CodeInvalidEvents, Message: "the batch is empty"}, nil
	}
	if len(raws) > max {
		return 413, APIError{Code: CodeTooManyEntries, Message: fmt.Sprintf("%d events in one batch; the limit is %d", len(raws), max)}, nil
	}
	var recs []pipeline.Record
	var bad []EntryError
	for i, raw := range raws {
		rec, err := one(raw)
		if err != nil {
			code, msg, field := classify(err)
			bad = append(bad, EntryError{Index: i, Code: code, Message: msg, Field: field})
			continue
		}
		recs = append(recs, rec)
	}
	if len(bad) > 0 {
		return 400, APIError{Code: CodeInvalidEvents, Message: fmt.Sprintf("%d of %d events are invalid; none was published", len(bad), len(raws)), Entries: bad}, nil
	}
	return 200, APIError{}, recs
}

// TestIngestMatchesOldPath sends structured and batch bodies to the handler
// and compares every answer and every published event with oldIngest.
func TestIngestMatchesOldPath(t *testing.T) {
	const max = 4
	ev := func(id, extra string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"erp/orders","type":"order.created"` + extra + `}`
	}
	singles := []string{
		ev("1", `,"data":{"a":[1,2,{"b":"<x>"}]}`),
		ev("2", `,"subject":"s","time":"2026-11-22T18:00:00+08:00","traceparent":"00-1","n":5,"Flag":true`),
		ev("3", `,"datacontenttype":"text/plain","data":"hello"`),
		ev("4", `,"data_base64":"aGVsbG8="`),
		" \n" + ev("5", ` , "data" : [ 1 , 2 ] `) + "\t",
		ev("6", `,"time":"yesterday"`),
		ev("7", `,"source":"dup"`),
		ev("8", `,"ext":{"a":1}`),
		ev("9", `,"big":12345678901234567890`),
		ev("10", `,"my-ext":"x"`),
		ev("11", `,"data":"`+strings.Repeat("x", pipeline.MaxEventSize)+`"`),
		`{"specversion":"0.3","id":"1","source":"s","type":"t"}`,
		`{"specversion":"2.0","id":"1","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"1","type":"t"}`,
		`{"id":"1","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":5,"source":"s","type":"t"}`,
		`[1]`, `null`, `"x"`, `{}`, ``, ` `, `{"specversion":"1.0",`, `{} x`, `{"a":"\q"}`,
	}
	var bodies []struct {
		batch bool
		body  string
	}
	for _, s := range singles {
		bodies = append(bodies, struct {
			batch bool
			body  string
		}{false, s})
	}
	batches := []string{
		`[` + ev("b1", "") + `,` + ev("b2", `,"data":{"x":1}`) + `]`,
		" [\n" + ev("b1", "") + " ,\n " + ev("b2", `,"data":"s"`) + " ]\n",
		`[` + ev("b1", "") + `,` + ev("b2", `,"time":"bad"`) + `,1,null,` + ev("b3", `,"ext":[1]`) + `]`,
		`[` + strings.Repeat(ev("m", "")+",", 5) + ev("m", "") + `]`,
		`[` + strings.Repeat(ev("m", "")+",", 5) + `]`,
		`[` + strings.Repeat("1,", 7) + `{"a":"\q"}]`,
		`[]`, ` [ ] `, `null`, `{"a":1}`, `"x"`, `1`, ``, ` `, `[`, `[1,]`, `[1 2]`, `[1]]`, `[1] x`,
		`[` + ev("b1", `,"data":"`+strings.Repeat("y", pipeline.MaxEventSize)+`"`) + `,` + ev("b2", "") + `]`,
	}
	for _, s := range batches {
		bodies = append(bodies, struct {
			batch bool
			body  string
		}{true, s})
	}

	for i, c := range bodies {
		bus := &memBus{}
		h := NewHandler(bus, Options{MaxBatchEntries: max, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return fixedNow }})
		ctype := mediaStructured
		if c.batch {
			ctype = mediaBatch
		}
		req := httptest.NewRequest("POST", "/v1/buses/default/events", strings.NewReader(c.body))
		req.Header.Set("Content-Type", ctype)
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, req)

		wantStatus, wantErr, wantRecs := oldIngest(c.batch, []byte(c.body), max)
		name := c.body
		if len(name) > 120 {
			name = name[:120] + "…"
		}
		if rw.Code != wantStatus {
			t.Errorf("%d %q: status %d, want %d (%s)", i, name, rw.Code, wantStatus, rw.Body)
			continue
		}
		if wantStatus != 200 {
			var got ErrorBody
			if err := json.Unmarshal(rw.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Error, wantErr) {
				t.Errorf("%d %q: answer\n%+v\nwant\n%+v", i, name, got.Error, wantErr)
			}
			continue
		}
		if len(bus.recs) != len(wantRecs) {
			t.Errorf("%d %q: %d events published, want %d", i, name, len(bus.recs), len(wantRecs))
			continue
		}
		for k := range wantRecs {
			if bus.recs[k].ID != wantRecs[k].ID || !bytes.Equal(bus.recs[k].Event, wantRecs[k].Event) {
				t.Errorf("%d %q: event %d\n%s\nwant\n%s", i, name, k, bus.recs[k].Event, wantRecs[k].Event)
			}
		}
	}
}
