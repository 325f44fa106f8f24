package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/busbar/busbar/pipeline"
)

// PutEventsRequest is the EventBridge-style batch. Each entry becomes one
// CloudEvent: Source → source, DetailType → type, Detail → data
// (application/json), Time → time, Subject → subject, Resources → the
// "resources" extension (comma-separated).
type PutEventsRequest struct {
	Entries []json.RawMessage `json:"Entries"`
}

// PutEventsEntry is one entry of a PutEvents request.
type PutEventsEntry struct {
	Source     string          `json:"Source"`
	DetailType string          `json:"DetailType"`
	Detail     json.RawMessage `json:"Detail"`
	Time       string          `json:"Time,omitempty"`
	Resources  []string        `json:"Resources,omitempty"`
	Subject    string          `json:"Subject,omitempty"`
	// EventBusName, when set, must name the bus of the URL.
	EventBusName string `json:"EventBusName,omitempty"`
	// TraceHeader is accepted for compatibility and kept as the "traceheader"
	// extension.
	TraceHeader string `json:"TraceHeader,omitempty"`
}

// PutEventsResponse answers per entry, in request order.
type PutEventsResponse struct {
	FailedEntryCount int                    `json:"FailedEntryCount"`
	Entries          []PutEventsResultEntry `json:"Entries"`
}

// PutEventsResultEntry carries either EventId or ErrorCode and ErrorMessage.
type PutEventsResultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

func (h *Handler) putEvents(w nethttp.ResponseWriter, r *nethttp.Request, bus string) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	var req PutEventsRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		err = errors.New("data after the request object")
	}
	if err != nil {
		// checkJSON explains malformed JSON best (with its offset); it runs
		// only for a body that failed, not on every request.
		if cerr := checkJSON(body); cerr != nil {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: cerr.Error()})
			return
		}
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: "PutEvents body: " + jsonErr(err) + `; expected {"Entries":[{"Source":…,"DetailType":…,"Detail":…}]}`})
		return
	}
	if len(req.Entries) == 0 {
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeInvalidArgument, Field: "Entries", Message: "Entries is missing or empty"})
		return
	}
	if len(req.Entries) > h.opts.MaxBatchEntries {
		writeError(w, nethttp.StatusRequestEntityTooLarge, APIError{Code: CodeTooManyEntries, Field: "Entries",
			Message: fmt.Sprintf("%d entries in one request; the limit is %d", len(req.Entries), h.opts.MaxBatchEntries)})
		return
	}

	resp := PutEventsResponse{Entries: make([]PutEventsResultEntry, len(req.Entries))}
	recs := make([]pipeline.Record, 0, len(req.Entries))
	idx := make([]int, 0, len(req.Entries)) // entry index of each record
	for i, raw := range req.Entries {
		rec, code, err := h.entry(raw, bus)
		if err != nil {
			resp.Entries[i] = PutEventsResultEntry{ErrorCode: code, ErrorMessage: err.Error()}
			resp.FailedEntryCount++
			continue
		}
		recs = append(recs, rec)
		idx = append(idx, i)
	}
	if len(recs) > 0 && !h.admit(w, bus, len(recs)) {
		return // over the bus's rate: the whole request is refused, as EventBridge's PutEvents quota does
	}
	if len(recs) > 0 {
		if err := h.pub.Publish(r.Context(), bus, recs); err != nil {
			h.opts.Logger.Error("publishing to bus failed", "bus", bus, "events", len(recs), "error", err)
			for _, i := range idx {
				resp.Entries[i] = PutEventsResultEntry{ErrorCode: CodeInternalFailure, ErrorMessage: "the bus did not confirm the event; retry it"}
			}
			resp.FailedEntryCount += len(idx)
		} else {
			for j, i := range idx {
				resp.Entries[i] = PutEventsResultEntry{EventID: recs[j].ID}
			}
		}
	}
	writeJSON(w, nethttp.StatusOK, resp)
}

// entry validates and converts one PutEvents entry.
func (h *Handler) entry(raw json.RawMessage, bus string) (pipeline.Record, string, error) {
	var e PutEventsEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return pipeline.Record{}, CodeInvalidArgument, errors.New(jsonErr(err))
	}
	if e.Source == "" {
		return pipeline.Record{}, CodeInvalidArgument, errors.New("Source: required")
	}
	if e.DetailType == "" {
		return pipeline.Record{}, CodeInvalidArgument, errors.New("DetailType: required")
	}
	if e.EventBusName != "" && e.EventBusName != bus {
		return pipeline.Record{}, CodeInvalidArgument, fmt.Errorf("EventBusName: %q differs from the bus of the URL (%q)", e.EventBusName, bus)
	}
	detail, err := detailJSON(e.Detail)
	if err != nil {
		return pipeline.Record{}, CodeMalformedDetail, err
	}
	if e.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			return pipeline.Record{}, CodeInvalidArgument, fmt.Errorf("Time: %q is not an RFC 3339 timestamp (e.g. 2026-11-22T10:00:00Z)", e.Time)
		}
	}
	for i, res := range e.Resources {
		if res == "" || strings.Contains(res, ",") {
			return pipeline.Record{}, CodeInvalidArgument, fmt.Errorf("Resources[%d]: must be non-empty and contain no comma", i)
		}
	}
	// The entry as a structured CloudEvent through the one-pass normaliser
	// (which itself takes the SDK path for anything unusual): the same
	// stored event as entrySDK makes, without the SDK's decode and encode.
	rec, err := pipeline.NormalizeJSON(entryEvent(&e, detail), h.opts.Now())
	if err != nil {
		code, msg, _ := classify(err)
		return pipeline.Record{}, code, errors.New(msg)
	}
	return rec, "", nil
}

// entryEvent is a validated entry as a structured CloudEvent.
func entryEvent(e *PutEventsEntry, detail []byte) []byte {
	b := make([]byte, 0, 192+len(e.Source)+len(e.DetailType)+len(e.Subject)+len(e.TraceHeader)+len(detail))
	b = append(b, `{"specversion":"1.0","source":`...)
	b = pipeline.AppendJSONString(b, e.Source)
	b = append(b, `,"type":`...)
	b = pipeline.AppendJSONString(b, e.DetailType)
	if e.Subject != "" {
		b = append(b, `,"subject":`...)
		b = pipeline.AppendJSONString(b, e.Subject)
	}
	if e.Time != "" {
		b = append(b, `,"time":`...)
		b = pipeline.AppendJSONString(b, e.Time)
	}
	if len(e.Resources) > 0 {
		b = append(b, `,"resources":`...)
		b = pipeline.AppendJSONString(b, strings.Join(e.Resources, ","))
	}
	if e.TraceHeader != "" {
		b = append(b, `,"traceheader":`...)
		b = pipeline.AppendJSONString(b, e.TraceHeader)
	}
	b = append(b, `,"datacontenttype":"application/json","data":`...)
	b = append(b, detail...)
	return append(b, '}')
}

// detailJSON accepts Detail as AWS sends it (a string holding a JSON object)
// or as the object itself, and returns the object's JSON.
func detailJSON(d json.RawMessage) (json.RawMessage, error) {
	d = bytes.TrimSpace(d)
	if len(d) == 0 || bytes.Equal(d, []byte("null")) {
		return nil, errors.New(`Detail: required (a JSON object, or a string holding one, e.g. "{\"orderId\":\"o-1\"}")`)
	}
	if d[0] == '"' {
		var s string
		if err := json.Unmarshal(d, &s); err != nil {
			return nil, fmt.Errorf("Detail: %v", err)
		}
		d = bytes.TrimSpace([]byte(s))
		if !json.Valid(d) {
			return nil, errors.New("Detail: the string is not valid JSON")
		}
	}
	if len(d) == 0 || d[0] != '{' {
		return nil, errors.New("Detail: must be a JSON object")
	}
	return d, nil
}

// jsonErr makes encoding/json's decode errors read as field errors.
func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(msg, "json: ")
}
