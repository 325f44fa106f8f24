package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	nethttp "net/http"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"golang.org/x/time/rate"

	"github.com/busbar/busbar/pipeline"
)

// Publisher is where accepted events go: the buses.
type Publisher interface {
	// HasBus reports whether a bus of that name exists.
	HasBus(bus string) bool
	// Publish durably appends the records to the bus, in order. It returns
	// nil only when every record is stored.
	Publish(ctx context.Context, bus string, records []pipeline.Record) error
}

// Options limit what one request may carry.
type Options struct {
	// MaxBatchEntries is the most events in one batch or PutEvents request.
	MaxBatchEntries int
	// MaxRequestBytes caps a request body.
	MaxRequestBytes int64
	// RateLimits cap the events per second each bus takes (by bus name;
	// a bus without one is not limited).
	RateLimits map[string]RateLimit
	Logger     *slog.Logger
	// Now returns the ingestion time (tests set it).
	Now func() time.Time
}

// RateLimit is a token bucket counted in events: PerSecond refill, Burst
// capacity (at least 1).
type RateLimit struct {
	PerSecond int
	Burst     int
}

// Media types of the CloudEvents HTTP binding.
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
)

// Handler serves the ingest API.
type Handler struct {
	pub    Publisher
	opts   Options
	mux    *nethttp.ServeMux
	limits map[string]*rate.Limiter // by bus
}

// NewHandler returns the ingest API as an http.Handler with routes
// POST /v1/buses/{bus}/events and POST /v1/buses/{bus}/put-events.
func NewHandler(pub Publisher, opts Options) *Handler {
	if opts.MaxBatchEntries <= 0 {
		opts.MaxBatchEntries = 1000
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{pub: pub, opts: opts, mux: nethttp.NewServeMux(), limits: map[string]*rate.Limiter{}}
	for bus, l := range opts.RateLimits {
		if l.PerSecond > 0 {
			h.limits[bus] = rate.NewLimiter(rate.Limit(l.PerSecond), max(l.Burst, 1))
		}
	}
	h.mux.HandleFunc("/v1/buses/{bus}/events", h.onlyPost(h.events))
	h.mux.HandleFunc("/v1/buses/{bus}/put-events", h.onlyPost(h.putEvents))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) { h.mux.ServeHTTP(w, r) }

// onlyPost checks the method and the bus, and caps the body.
func (h *Handler) onlyPost(next func(nethttp.ResponseWriter, *nethttp.Request, string)) nethttp.HandlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Method != nethttp.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, nethttp.StatusMethodNotAllowed, APIError{Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed here; use POST"})
			return
		}
		bus := r.PathValue("bus")
		if !h.pub.HasBus(bus) {
			writeError(w, nethttp.StatusNotFound, APIError{Code: CodeUnknownBus, Message: fmt.Sprintf("bus %q does not exist; declare it under buses: in the config", bus)})
			return
		}
		if r.ContentLength > h.opts.MaxRequestBytes {
			h.tooLarge(w)
			return
		}
		r.Body = nethttp.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes)
		next(w, r, bus)
	}
}

func (h *Handler) tooLarge(w nethttp.ResponseWriter) {
	writeError(w, nethttp.StatusRequestEntityTooLarge, APIError{Code: CodeRequestTooLarge,
		Message: fmt.Sprintf("request body over %d bytes; split it into smaller batches", h.opts.MaxRequestBytes)})
}

// readBody reads the capped body; false means an answer was written.
func (h *Handler) readBody(w nethttp.ResponseWriter, r *nethttp.Request) ([]byte, bool) {
	b, err := readAll(r.Body, r.ContentLength)
	if err != nil {
		var mbe *nethttp.MaxBytesError
		if errors.As(err, &mbe) {
			h.tooLarge(w)
		} else {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: "reading body: " + err.Error()})
		}
		return nil, false
	}
	return b, true
}

// maxPrealloc bounds the buffer reserved for a body before it arrives.
const maxPrealloc = 64 << 10

// readAll reads r to the end into one buffer sized from the announced
// length, instead of letting io.ReadAll grow one step by step. At most
// maxPrealloc is reserved before the bytes arrive, so a client announcing
// megabytes it never sends holds no more than that. A body longer than
// announced still reads whole (the MaxBytesReader under it enforces the
// limit).
func readAll(r io.Reader, announced int64) ([]byte, error) {
	if announced <= 0 || announced >= maxPrealloc {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, announced+1) // +1: EOF arrives without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err
		case len(b) == cap(b):
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}

// events serves the CloudEvents HTTP binding.
func (h *Handler) events(w nethttp.ResponseWriter, r *nethttp.Request, bus string) {
	media, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case media == mediaBatch:
		h.batch(w, r, bus)
	case media == mediaStructured:
		body, ok := h.readBody(w, r)
		if !ok {
			return
		}
		rec, err := pipeline.NormalizeJSON(body, h.opts.Now())
		if err != nil {
			h.refuse(w, body, err)
			return
		}
		h.accept(w, r, bus, rec)
	case r.Header.Get("Ce-Specversion") != "":
		body, ok := h.readBody(w, r)
		if !ok {
			return
		}
		if raw, ok := binaryAsStructured(r.Header, body); ok {
			if rec, err := pipeline.NormalizeJSON(raw, h.opts.Now()); err == nil {
				h.accept(w, r, bus, rec)
				return
			}
			// Invalid: the SDK's reader below answers, with its errors.
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeInvalidEvent, Message: "binary mode: " + err.Error()})
			return
		}
		h.single(w, r, bus, ev)
	default:
		writeError(w, nethttp.StatusUnsupportedMediaType, APIError{Code: CodeUnsupportedMedia, Message: fmt.Sprintf(
			"Content-Type %q without ce-specversion header: send structured mode with Content-Type %s, batch mode with %s, or binary mode with ce-specversion, ce-id, ce-source and ce-type headers",
			r.Header.Get("Content-Type"), mediaStructured, mediaBatch)})
	}
}

func (h *Handler) single(w nethttp.ResponseWriter, r *nethttp.Request, bus string, ev *event.Event) {
	rec, err := h.prepare(ev)
	if err != nil {
		h.refuse(w, nil, err)
		return
	}
	h.accept(w, r, bus, rec)
}

// refuse answers a single event's failure. body, when given, is explained
// with checkJSON if the event was malformed JSON.
func (h *Handler) refuse(w nethttp.ResponseWriter, body []byte, err error) {
	if errors.Is(err, pipeline.ErrMalformedJSON) {
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: explainJSON(body, err)})
		return
	}
	code, msg, field := classify(err)
	status := nethttp.StatusBadRequest
	if code == CodeEventTooLarge {
		status = nethttp.StatusRequestEntityTooLarge
	}
	writeError(w, status, APIError{Code: code, Message: msg, Field: field})
}

// accept publishes one event and answers with its id.
func (h *Handler) accept(w nethttp.ResponseWriter, r *nethttp.Request, bus string, rec pipeline.Record) {
	if !h.publish(w, r, bus, []pipeline.Record{rec}) {
		return
	}
	writeJSON(w, nethttp.StatusOK, map[string]any{"id": rec.ID})
}

// batch serves batch mode: every event must be valid, or none is published.
// One walk over the array checks the syntax and normalises each event where
// it lies; past MaxBatchEntries the rest is only checked and counted.
func (h *Handler) batch(w nethttp.ResponseWriter, r *nethttp.Request, bus string) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	walk := pipeline.NewBatchJSON(body)
	if !walk.IsArray() {
		if err := checkJSON(body); err != nil {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: err.Error()})
		} else if string(bytes.TrimSpace(body)) == "null" {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeInvalidEvents, Message: "the batch is empty"})
		} else {
			writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: "batch mode expects a JSON array of structured events"})
		}
		return
	}
	var recs []pipeline.Record
	var bad []EntryError
	n := 0
	for ; ; n++ {
		if n >= h.opts.MaxBatchEntries {
			if !walk.Skip() {
				break
			}
			continue
		}
		rec, err, ok := walk.Next(h.opts.Now())
		if !ok {
			break
		}
		if err != nil {
			code, msg, field := classify(err)
			bad = append(bad, EntryError{Index: n, Code: code, Message: msg, Field: field})
			continue
		}
		if recs == nil {
			recs = make([]pipeline.Record, 0, min(h.opts.MaxBatchEntries, 16))
		}
		recs = append(recs, rec)
	}
	switch {
	case walk.Err() != nil:
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeMalformedJSON, Message: explainJSON(body, walk.Err())})
		return
	case n == 0:
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeInvalidEvents, Message: "the batch is empty"})
		return
	case n > h.opts.MaxBatchEntries:
		writeError(w, nethttp.StatusRequestEntityTooLarge, APIError{Code: CodeTooManyEntries,
			Message: fmt.Sprintf("%d events in one batch; the limit is %d", n, h.opts.MaxBatchEntries)})
		return
	case len(bad) > 0:
		writeError(w, nethttp.StatusBadRequest, APIError{Code: CodeInvalidEvents,
			Message: fmt.Sprintf("%d of %d events are invalid; none was published", len(bad), n), Entries: bad})
		return
	}
	if !h.publish(w, r, bus, recs) {
		return
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	writeJSON(w, nethttp.StatusOK, map[string]any{"ids": ids})
}

// prepare normalises and encodes one event.
func (h *Handler) prepare(ev *event.Event) (pipeline.Record, error) {
	now := h.opts.Now()
	if err := pipeline.Normalize(ev, now); err != nil {
		return pipeline.Record{}, err
	}
	b, err := pipeline.Encode(ev)
	if err != nil {
		return pipeline.Record{}, err
	}
	return pipeline.Record{ID: ev.ID(), Event: b, IngestTime: now}, nil
}

// admit takes n events from the bus's rate limit, all or none; false
// means the refusal was written: 429 with Retry-After while the bus is
// over its rate, 413 when n exceeds its burst (such a request never fits).
func (h *Handler) admit(w nethttp.ResponseWriter, bus string, n int) bool {
	lim := h.limits[bus]
	if lim == nil {
		return true
	}
	now := time.Now()
	res := lim.ReserveN(now, n)
	if !res.OK() {
		writeError(w, nethttp.StatusRequestEntityTooLarge, APIError{Code: CodeTooManyEntries, Message: fmt.Sprintf(
			"%d events in one request; bus %q takes at most %d at once (its rate_limit_burst): split the request", n, bus, lim.Burst())})
		return false
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		secs := max(int(math.Ceil(wait.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, nethttp.StatusTooManyRequests, APIError{Code: CodeThrottled, Message: fmt.Sprintf(
			"bus %q takes %g events/s (burst %d); none of these %d events was published: retry in %s",
			bus, float64(lim.Limit()), lim.Burst(), n, wait.Round(time.Millisecond))})
		return false
	}
	return true
}

// publish hands records to the bus; false means an error answer was written.
func (h *Handler) publish(w nethttp.ResponseWriter, r *nethttp.Request, bus string, recs []pipeline.Record) bool {
	if !h.admit(w, bus, len(recs)) {
		return false
	}
	if err := h.pub.Publish(r.Context(), bus, recs); err != nil {
		h.opts.Logger.Error("publishing to bus failed", "bus", bus, "events", len(recs), "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, nethttp.StatusServiceUnavailable, APIError{Code: CodeBusUnavailable,
			Message: "the bus did not confirm the events; nothing is guaranteed stored, retry the request"})
		return false
	}
	return true
}

// checkJSON reports malformed JSON with the byte offset of the problem.
func checkJSON(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("the body is empty")
	}
	if json.Valid(b) {
		return nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

// explainJSON says what is wrong with a body pipeline found malformed, in
// encoding/json's words (err's own words should the two ever disagree).
func explainJSON(body []byte, err error) string {
	if e := checkJSON(body); e != nil {
		return e.Error()
	}
	return err.Error()
}
