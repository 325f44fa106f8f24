package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/routers"
)

// DeadLetterSource is what the dead-letter endpoints need from the engine.
type DeadLetterSource interface {
	// Queues are the (rule, target) queues.
	Queues() []routers.QueueRef
	// DeadLetterQueues name the dead-letter queues of its buses, pipes
	// and sources (routers.BusDLQ, PipeDLQ, SourceDLQ). Any queue on the
	// transport can be read by name, listed here or not.
	DeadLetterQueues() []routers.DLQ
	DeadLetters() *routers.DeadLetters
}

// QueueSummary is one target's dead-letter count.
type QueueSummary struct {
	routers.QueueRef
	DeadLetters uint64 `json:"dead_letters"`
}

// DLQSummary is the dead-letter count of a bus's, pipe's or source's queue.
type DLQSummary struct {
	routers.DLQ
	DeadLetters uint64 `json:"dead_letters"`
}

// Summary is the answer of GET /v1/dlq: Queues are the targets' dead-letter
// queues (as before other kinds existed), OtherQueues the buses', pipes' and
// sources'.
type Summary struct {
	Queues      []QueueSummary `json:"queues"`
	OtherQueues []DLQSummary   `json:"other_queues"`
}

// RedriveRequest is the body of POST …/redrive. Times are RFC 3339.
type RedriveRequest struct {
	Since  string `json:"since,omitempty"`
	Until  string `json:"until,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Limit redrives at most this many records (0 = all); clients page with
	// it to show progress.
	Limit int `json:"limit,omitempty"`
}

// Path segments of the bus, pipe and source queues. '~' cannot occur in a
// bus, rule or target name, so /v1/dlq/~pipes/x/42 is never the records of
// target 42 in rule x of a bus named like the segment.
var otherKinds = []struct {
	kind    routers.DLQKind
	segment string
	make    func(string) routers.DLQ
}{
	{routers.KindBus, "~buses", routers.BusDLQ},
	{routers.KindPipe, "~pipes", routers.PipeDLQ},
	{routers.KindSource, "~sources", routers.SourceDLQ},
}

// DLQPath is the API path of q's records: /v1/dlq/{bus}/{rule}/{target},
// /v1/dlq/~buses/{bus}, /v1/dlq/~pipes/{pipe} or /v1/dlq/~sources/{source}.
func DLQPath(q routers.DLQ) string {
	for _, k := range otherKinds {
		if k.kind == q.Kind {
			return "/v1/dlq/" + k.segment + "/" + url.PathEscape(q.Name())
		}
	}
	return "/v1/dlq/" + url.PathEscape(q.Bus) + "/" + url.PathEscape(q.Rule) + "/" + url.PathEscape(q.Target)
}

// NewDLQHandler serves
//
//	GET  /v1/dlq                                    every dead-letter queue's count
//	GET  /v1/dlq/{bus}/{rule}/{target}?from=&limit= a page of a target's records
//	GET  /v1/dlq/{bus}/{rule}/{target}/{seq}        one record with its event
//	POST /v1/dlq/{bus}/{rule}/{target}/redrive      put records back on the queue
//	GET  /v1/dlq/~buses/{bus}[/{seq}]               a bus's unroutable events
//	GET  /v1/dlq/~pipes/{pipe}[/{seq}]              a pipe's dead letters
//	GET  /v1/dlq/~sources/{source}[/{seq}]          a source's invalid records
//	POST /v1/dlq/~{buses,pipes,sources}/{name}/redrive  refused, saying why
func NewDLQHandler(src DeadLetterSource) http.Handler {
	h := &dlqHandler{src: src}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/dlq", h.summary)
	mux.HandleFunc("GET /v1/dlq/{bus}/{rule}/{target}", h.list(h.target))
	mux.HandleFunc("GET /v1/dlq/{bus}/{rule}/{target}/{seq}", h.show(h.target))
	mux.HandleFunc("POST /v1/dlq/{bus}/{rule}/{target}/redrive", h.redrive)
	for _, k := range otherKinds {
		resolve := h.other(k.kind, k.make)
		mux.HandleFunc("GET /v1/dlq/"+k.segment+"/{name}", h.list(resolve))
		mux.HandleFunc("GET /v1/dlq/"+k.segment+"/{name}/{seq}", h.show(resolve))
		mux.HandleFunc("POST /v1/dlq/"+k.segment+"/{name}/redrive", h.refuseRedrive(resolve))
	}
	mux.HandleFunc("/v1/dlq/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", r.Method+" "+r.URL.Path+" is not a dead-letter endpoint")
	})
	return mux
}

type dlqHandler struct{ src DeadLetterSource }

// resolver names the queue of a request, or answers the error itself.
type resolver func(http.ResponseWriter, *http.Request, *routers.DeadLetters) (routers.DLQ, bool)

func (h *dlqHandler) tools(w http.ResponseWriter) *routers.DeadLetters {
	dl := h.src.DeadLetters()
	if dl == nil {
		writeError(w, http.StatusNotImplemented, "NotSupported", routers.ErrNoInspector.Error())
	}
	return dl
}

// target resolves the target queue of the path, answering 404 for an
// unknown one.
func (h *dlqHandler) target(w http.ResponseWriter, r *http.Request, _ *routers.DeadLetters) (routers.DLQ, bool) {
	q := routers.QueueRef{Bus: r.PathValue("bus"), Rule: r.PathValue("rule"), Target: r.PathValue("target")}
	for _, known := range h.src.Queues() {
		if known == q {
			return q.DLQ(), true
		}
	}
	writeError(w, http.StatusNotFound, "UnknownTarget", fmt.Sprintf("no target %q in rule %q of bus %q", q.Target, q.Rule, q.Bus))
	return routers.DLQ{}, false
}

// other resolves a bus's, pipe's or source's queue: one the engine names,
// or one still on the transport (its owner left the config, its records
// did not). Anything else is 404.
func (h *dlqHandler) other(kind routers.DLQKind, mk func(string) routers.DLQ) resolver {
	code := "Unknown" + strings.ToUpper(string(kind[:1])) + string(kind[1:])
	return func(w http.ResponseWriter, r *http.Request, dl *routers.DeadLetters) (routers.DLQ, bool) {
		q := mk(r.PathValue("name"))
		for _, known := range h.src.DeadLetterQueues() {
			if known == q {
				return q, true
			}
		}
		ok, err := dl.Exists(r.Context(), q)
		switch {
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
		case !ok:
			writeError(w, http.StatusNotFound, code, fmt.Sprintf("no %s (and no dead-letter queue %s on the transport)", q, q.Topic()))
		}
		return q, ok && err == nil
	}
}

func (h *dlqHandler) summary(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	out := Summary{Queues: []QueueSummary{}, OtherQueues: []DLQSummary{}}
	for _, q := range h.src.Queues() {
		n, err := dl.Count(r.Context(), q.DLQ())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
			return
		}
		out.Queues = append(out.Queues, QueueSummary{QueueRef: q, DeadLetters: n})
	}
	for _, q := range h.src.DeadLetterQueues() {
		n, err := dl.Count(r.Context(), q)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
			return
		}
		out.OtherQueues = append(out.OtherQueues, DLQSummary{DLQ: q, DeadLetters: n})
	}
	writeJSON(w, http.StatusOK, out)
}

// queue is the dead-letter tooling and the queue a request names; false
// means the error answer was written.
func (h *dlqHandler) queue(w http.ResponseWriter, r *http.Request, resolve resolver) (*routers.DeadLetters, routers.DLQ, bool) {
	dl := h.tools(w)
	if dl == nil {
		return nil, routers.DLQ{}, false
	}
	q, ok := resolve(w, r, dl)
	return dl, q, ok
}

func (h *dlqHandler) list(resolve resolver) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dl, q, ok := h.queue(w, r, resolve)
		if !ok {
			return
		}
		from, err := uintParam(r, "from", 0)
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidParameter", err.Error())
			return
		}
		limit, err := uintParam(r, "limit", 100)
		if err != nil || limit < 1 || limit > 1000 {
			writeError(w, http.StatusBadRequest, "InvalidParameter", "limit: use a number from 1 to 1000")
			return
		}
		recs, next, err := dl.List(r.Context(), q, from, int(limit))
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
			return
		}
		if recs == nil {
			recs = []routers.DeadLetter{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"records": recs, "next": next})
	}
}

func (h *dlqHandler) show(resolve resolver) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dl, q, ok := h.queue(w, r, resolve)
		if !ok {
			return
		}
		seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("the record is named by its sequence number, e.g. %s/42", DLQPath(q)))
			return
		}
		rec, err := dl.Show(r.Context(), q, seq)
		switch {
		case errors.Is(err, transport.ErrNotFound):
			why := "expired or never there"
			if q.Kind == routers.KindTarget {
				why = "redriven, " + why
			}
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no dead letter %d for %s (%s)", seq, q, why))
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
		default:
			writeJSON(w, http.StatusOK, rec)
		}
	}
}

// refuseRedrive answers a redrive of a bus's, pipe's or source's queue:
// there is no queue to put the records back on.
func (h *dlqHandler) refuseRedrive(resolve resolver) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, q, ok := h.queue(w, r, resolve)
		if !ok {
			return
		}
		writeError(w, http.StatusConflict, "NotRedrivable", q.Redrivable().Error())
	}
}

func (h *dlqHandler) redrive(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	d, ok := h.target(w, r, dl)
	if !ok {
		return
	}
	q := routers.QueueRef{Bus: d.Bus, Rule: d.Rule, Target: d.Target}
	var req RedriveRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MalformedJSON", err.Error())
		return
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytesReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "MalformedJSON", "redrive body: "+err.Error()+`; expected {"since":…,"until":…,"dry_run":…,"limit":…}`)
			return
		}
	}
	opts := routers.RedriveOptions{DryRun: req.DryRun, Limit: req.Limit}
	for _, f := range []struct {
		name string
		in   string
		out  *time.Time
	}{{"since", req.Since, &opts.Since}, {"until", req.Until, &opts.Until}} {
		if f.in == "" {
			continue
		}
		if *f.out, err = time.Parse(time.RFC3339Nano, f.in); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidParameter", fmt.Sprintf("%s: %q is not an RFC 3339 time", f.name, f.in))
			return
		}
	}
	if req.Limit < 0 {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "limit: must not be negative")
		return
	}
	res, err := dl.Redrive(r.Context(), q, opts)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "TransportError", fmt.Sprintf("%v (redriven so far: %d)", err, res.Redriven))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a whole number", name, v)
	}
	return n, nil
}
