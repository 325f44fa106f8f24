package clickhouse

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// maxQueryBody caps a POST /v1/query body.
const maxQueryBody = 1 << 20

// QueryHandler serves /v1/query: read-only SQL against ClickHouse.
//
//	GET  /v1/query?sql=SELECT+...&format=json
//	POST /v1/query   {"sql": "SELECT ...", "format": "csv"}
//	POST /v1/query?format=ndjson   with the SQL as a text/plain body
//
// format is json (default: {"columns": [...], "rows": [[...]], ...}),
// ndjson, csv or table. Errors are {"error": {"code", "message"}}: 400
// BadQuery (bad SQL), 403 ReadOnly (a write or a SETTINGS change), 422
// TooManyRows, 504 Timeout, 503 Unavailable.
func QueryHandler(q *Querier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sql, format := r.URL.Query().Get("sql"), r.URL.Query().Get("format")
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQueryBody))
			if err != nil {
				writeError(w, http.StatusRequestEntityTooLarge, "TooLarge", "the query body is larger than 1 MiB")
				return
			}
			ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if ct == "application/json" {
				var req struct {
					SQL    string `json:"sql"`
					Format string `json:"format"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					writeError(w, http.StatusBadRequest, "BadRequest", "the body is not JSON like {\"sql\": \"SELECT ...\", \"format\": \"json\"}: "+err.Error())
					return
				}
				sql = req.SQL
				if req.Format != "" {
					format = req.Format
				}
			} else {
				sql = string(body)
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET ?sql=... or POST")
			return
		}
		if format == "" {
			format = "json"
		}
		if !slices.Contains(Formats, format) {
			writeError(w, http.StatusBadRequest, "BadRequest", "format must be one of "+strings.Join(Formats, ", "))
			return
		}
		if strings.TrimSpace(sql) == "" {
			writeError(w, http.StatusBadRequest, "BadQuery", "no SQL: pass ?sql=SELECT... or POST it")
			return
		}
		res, err := q.Query(r.Context(), sql)
		if err != nil {
			var qe *QueryError
			if errors.As(err, &qe) {
				writeError(w, qe.HTTPStatus(), qe.Kind, qe.Msg)
				return
			}
			writeError(w, http.StatusServiceUnavailable, "Unavailable", err.Error())
			return
		}
		w.Header().Set("Content-Type", ContentType(format))
		_ = WriteResult(w, res, format)
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
