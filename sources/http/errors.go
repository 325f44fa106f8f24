package http

import (
	"encoding/json"
	"errors"
	nethttp "net/http"

	"github.com/busbar/busbar/pipeline"
)

// Error codes in JSON error answers.
const (
	CodeMalformedJSON    = "MalformedJSON"
	CodeInvalidEvent     = "InvalidEvent"
	CodeInvalidEvents    = "InvalidEvents"
	CodeEventTooLarge    = "EventTooLarge"
	CodeRequestTooLarge  = "RequestTooLarge"
	CodeTooManyEntries   = "TooManyEntries"
	CodeUnknownBus       = "UnknownBus"
	CodeUnsupportedMedia = "UnsupportedMediaType"
	CodeMethodNotAllowed = "MethodNotAllowed"
	CodeBusUnavailable   = "BusUnavailable"
	CodeMalformedDetail  = "MalformedDetail"
	CodeInvalidArgument  = "InvalidArgument"
	CodeInternalFailure  = "InternalFailure"
	// CodeThrottled: the bus is over its rate_limit_per_second (429). The
	// name is EventBridge's, which AWS SDKs retry with backoff.
	CodeThrottled = "ThrottlingException"
)

// ErrorBody is the JSON of every error answer: {"error": {...}}.
type ErrorBody struct {
	Error APIError `json:"error"`
}

// APIError says what was wrong with a request and, when it is one attribute
// or entry, which.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the CloudEvents attribute or JSON field at fault.
	Field string `json:"field,omitempty"`
	// Entries lists the faulty events of a batch, by index.
	Entries []EntryError `json:"entries,omitempty"`
}

// EntryError is one faulty event of a batch.
type EntryError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w nethttp.ResponseWriter, status int, e APIError) {
	writeJSON(w, status, ErrorBody{Error: e})
}

// classify turns an event's normalise/encode failure into a code, a message
// and the field at fault.
func classify(err error) (code, msg, field string) {
	var ve *pipeline.ValidationError
	switch {
	case errors.Is(err, pipeline.ErrTooLarge):
		return CodeEventTooLarge, err.Error(), ""
	case errors.As(err, &ve):
		return CodeInvalidEvent, ve.Error(), ve.Field
	default:
		return CodeInvalidEvent, err.Error(), ""
	}
}
