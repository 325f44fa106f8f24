package api

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// errorBody is busbar's JSON error answer, the same shape as the ingest API's.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // dead letters are shown as they are: <xml/>, not \u003cxml/\u003e
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
