package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/routers"
)

// DeadLetterSource is what the dead-letter endpoints need from the engine.
type DeadLetterSource interface {
	Queues() []routers.QueueRef
	DeadLetters() *routers.DeadLetters
}

// QueueSummary is one target's dead-letter count.
type QueueSummary struct {
	routers.QueueRef
	DeadLetters uint64 `json:"dead_letters"`
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

// NewDLQHandler serves
//
//	GET  /v1/dlq                                   every target's dead-letter count
//	GET  /v1/dlq/{bus}/{rule}/{target}?from=&limit= a page of records
//	GET  /v1/dlq/{bus}/{rule}/{target}/{seq}        one record with its event
//	POST /v1/dlq/{bus}/{rule}/{target}/redrive      put records back on the queue
func NewDLQHandler(src DeadLetterSource) http.Handler {
	h := &dlqHandler{src: src}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/dlq", h.summary)
	mux.HandleFunc("GET /v1/dlq/{bus}/{rule}/{target}", h.list)
	mux.HandleFunc("GET /v1/dlq/{bus}/{rule}/{target}/{seq}", h.show)
	mux.HandleFunc("POST /v1/dlq/{bus}/{rule}/{target}/redrive", h.redrive)
	mux.HandleFunc("/v1/dlq/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", r.Method+" "+r.URL.Path+" is not a dead-letter endpoint")
	})
	return mux
}

type dlqHandler struct{ src DeadLetterSource }

func (h *dlqHandler) tools(w http.ResponseWriter) *routers.DeadLetters {
	dl := h.src.DeadLetters()
	if dl == nil {
		writeError(w, http.StatusNotImplemented, "NotSupported", routers.ErrNoInspector.Error())
	}
	return dl
}

// queue resolves the queue of the path, answering 404 for an unknown one.
func (h *dlqHandler) queue(w http.ResponseWriter, r *http.Request) (routers.QueueRef, bool) {
	q := routers.QueueRef{Bus: r.PathValue("bus"), Rule: r.PathValue("rule"), Target: r.PathValue("target")}
	for _, known := range h.src.Queues() {
		if known == q {
			return q, true
		}
	}
	writeError(w, http.StatusNotFound, "UnknownTarget", fmt.Sprintf("no target %q in rule %q of bus %q", q.Target, q.Rule, q.Bus))
	return q, false
}

func (h *dlqHandler) summary(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	out := []QueueSummary{}
	for _, q := range h.src.Queues() {
		n, err := dl.Count(r.Context(), q)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
			return
		}
		out = append(out, QueueSummary{QueueRef: q, DeadLetters: n})
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

func (h *dlqHandler) list(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	q, ok := h.queue(w, r)
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

func (h *dlqHandler) show(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	q, ok := h.queue(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "the record is named by its sequence number, e.g. /v1/dlq/retail/orders/finance/42")
		return
	}
	rec, err := dl.Show(r.Context(), q, seq)
	switch {
	case errors.Is(err, transport.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no dead letter %d for target %q (redriven, expired or never there)", seq, q.Target))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "TransportError", err.Error())
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

func (h *dlqHandler) redrive(w http.ResponseWriter, r *http.Request) {
	dl := h.tools(w)
	if dl == nil {
		return
	}
	q, ok := h.queue(w, r)
	if !ok {
		return
	}
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
