package filters

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// MaxTestPatternBody is the largest request body POST /v1/test-pattern reads.
const MaxTestPatternBody = 1 << 20

// TestPatternRequest is the body of POST /v1/test-pattern. Pattern and Event
// are JSON objects, or strings holding JSON (as EventBridge's
// TestEventPattern takes them, under the names EventPattern and Event,
// which are accepted too). Filter is an optional expr-lang filter.
type TestPatternRequest struct {
	Pattern      json.RawMessage `json:"pattern"`
	Event        json.RawMessage `json:"event"`
	Filter       string          `json:"filter,omitempty"`
	EventPattern json.RawMessage `json:"EventPattern,omitempty"`
}

// TestPatternResponse is the answer: Result as EventBridge's
// TestEventPattern gives it, plus busbar's explanation.
type TestPatternResponse struct {
	Result      bool   `json:"Result"`
	Explanation Result `json:"explanation"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestPatternHandler serves POST /v1/test-pattern. Bad input — a body over
// 1 MiB, malformed JSON, wrong types, an invalid pattern, filter or event —
// gets 400 with {"error":{"code":…,"message":…}}.
func TestPatternHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use POST")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxTestPatternBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusBadRequest, "RequestTooLarge", "the request body is over 1 MiB")
				return
			}
			writeError(w, http.StatusBadRequest, "BadRequest", "cannot read the request body: "+err.Error())
			return
		}
		var req TestPatternRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "MalformedRequest", `the body must be {"pattern": {...}, "event": {...}}: `+err.Error())
			return
		}
		if dec.More() {
			writeError(w, http.StatusBadRequest, "MalformedRequest", "unexpected data after the request object")
			return
		}
		if len(req.Pattern) == 0 {
			req.Pattern = req.EventPattern
		}
		pattern, ok := objectOrString(req.Pattern)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidEventPattern", "pattern must be a JSON object or a string holding one")
			return
		}
		event, ok := objectOrString(req.Event)
		if !ok || len(bytes.TrimSpace(event)) == 0 || bytes.TrimSpace(event)[0] != '{' {
			writeError(w, http.StatusBadRequest, "InvalidEvent", "event must be a JSON object or a string holding one")
			return
		}
		res, err := ExplainRule(Rule{Pattern: pattern, Filter: req.Filter}, event)
		if err != nil {
			var pe *PatternError
			var fe *FilterError
			switch {
			case errors.As(err, &pe):
				writeError(w, http.StatusBadRequest, "InvalidEventPattern", err.Error())
			case errors.As(err, &fe):
				writeError(w, http.StatusBadRequest, "InvalidFilter", err.Error())
			default:
				writeError(w, http.StatusBadRequest, "InvalidEvent", err.Error())
			}
			return
		}
		writeJSON(w, http.StatusOK, TestPatternResponse{Result: res.Match, Explanation: res})
	})
}

// objectOrString returns the JSON text of an object, or of the JSON held in a
// string; a missing pattern is the empty pattern, which matches everything.
func objectOrString(raw json.RawMessage) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, true
	}
	switch raw[0] {
	case '{':
		return raw, true
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	case 'n':
		return nil, string(raw) == "null"
	}
	return nil, false
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
