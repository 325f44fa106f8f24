package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/busbar/busbar/config"
)

// MaxTestTransformBody is the largest request body POST /v1/test-transform
// reads.
const MaxTestTransformBody = 1 << 20

// TestTransformRequest is the body of POST /v1/test-transform. Transform is
// what a target's transform: holds, as a JSON object or as a string of YAML
// (pasted from a config); ${ENV} references in it are not expanded (a
// server's environment is not for its clients to read). Event is a
// structured-mode CloudEvent, as an object or a string holding one. Rule and
// Bus fill <busbar.rule-name> and <busbar.bus>.
type TestTransformRequest struct {
	Transform json.RawMessage `json:"transform"`
	Event     json.RawMessage `json:"event"`
	Rule      string          `json:"rule,omitempty"`
	Bus       string          `json:"bus,omitempty"`
}

// TestTransformResponse is what the target would receive: Body as text,
// or BodyBase64 when it is not UTF-8 (data_base64 payloads); JSON holds the
// body again as JSON when the content type is JSON, for reading.
type TestTransformResponse struct {
	ContentType string          `json:"content_type"`
	Form        string          `json:"form"`
	Body        *string         `json:"body,omitempty"`
	BodyBase64  []byte          `json:"body_base64,omitempty"`
	JSON        json.RawMessage `json:"json,omitempty"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestTransformHandler serves POST /v1/test-transform. Bad input gets
// {"error":{"code":…,"message":…}}: 413 RequestTooLarge over 1 MiB,
// 400 MalformedRequest for a body that is not the request object,
// InvalidTransform (every problem, one per line, with line:col in the
// transform), InvalidEvent, and TransformFailed when the transform fails on
// this event (the event path would dead-letter it).
func TestTransformHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use POST")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxTestTransformBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "the request body is over 1 MiB")
				return
			}
			writeError(w, http.StatusBadRequest, "BadRequest", "cannot read the request body: "+err.Error())
			return
		}
		var req TestTransformRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "MalformedRequest", `the body must be {"transform": {...}, "event": {...}}: `+err.Error())
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			writeError(w, http.StatusBadRequest, "MalformedRequest", "unexpected data after the request object")
			return
		}
		spec, name, ok := specText(req.Transform)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidTransform", "transform must be a JSON object, or a string holding YAML")
			return
		}
		event, ok := eventText(req.Event)
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidEvent", "event must be a JSON object or a string holding one")
			return
		}
		res, err := Try(spec, name, nil, event, Meta{Rule: req.Rule, Bus: req.Bus})
		if err != nil {
			var cl config.ErrorList
			var ee *EventError
			switch {
			case errors.As(err, &cl):
				writeError(w, http.StatusBadRequest, "InvalidTransform", err.Error())
			case errors.As(err, &ee):
				writeError(w, http.StatusBadRequest, "InvalidEvent", err.Error())
			case errors.Is(err, ErrTransform):
				writeError(w, http.StatusBadRequest, "TransformFailed", err.Error())
			default:
				writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
			}
			return
		}
		out := TestTransformResponse{ContentType: res.ContentType, Form: res.Form}
		if utf8.Valid(res.Body) {
			s := string(res.Body)
			out.Body = &s
		} else {
			out.BodyBase64 = res.Body
		}
		if res.ContentType == ContentTypeJSON || res.ContentType == ContentTypeCloudEvent {
			if json.Valid(res.Body) {
				out.JSON = res.Body
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// specText returns the transform's text and a name whose extension says
// how to read it.
func specText(raw json.RawMessage) ([]byte, string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, "", false
	}
	switch raw[0] {
	case '{':
		return raw, "transform.json", true
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, "", false
		}
		return []byte(s), "transform.yaml", true
	}
	return nil, "", false
}

func eventText(raw json.RawMessage) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
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
