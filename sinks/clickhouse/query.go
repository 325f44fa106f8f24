package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// QueryLimits bound what one query may cost. ClickHouse enforces them.
type QueryLimits struct {
	// MaxExecutionTime stops a query running longer (default 30s).
	MaxExecutionTime time.Duration
	// MaxResultRows fails a query returning more rows (default 10000).
	MaxResultRows int
}

// Default query limits.
const (
	DefaultMaxExecutionTime = 30 * time.Second
	DefaultMaxResultRows    = 10_000
)

// Querier runs read-only SQL against ClickHouse: every query carries
// readonly=1 (no INSERT, DROP, ALTER, SET, nor SETTINGS that loosen the
// limits), max_execution_time and max_result_rows.
type Querier struct {
	conn  driver.Conn
	table string
	lim   QueryLimits
}

// NewQuerier connects to the server of dsn. table (name or db.name,
// default "events") is what Search queries.
func NewQuerier(ctx context.Context, dsn, table string, lim QueryLimits) (*Querier, error) {
	if lim.MaxExecutionTime <= 0 {
		lim.MaxExecutionTime = DefaultMaxExecutionTime
	}
	if lim.MaxResultRows <= 0 {
		lim.MaxResultRows = DefaultMaxResultRows
	}
	if table == "" {
		table = "events"
	}
	o, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dsn: %v", redactErr(err, dsn))
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	conn, err := ch.Open(o)
	if err != nil {
		return nil, explain(err, o)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, explain(err, o)
	}
	return &Querier{conn: conn, table: table, lim: lim}, nil
}

// Table is the table Search queries.
func (q *Querier) Table() string { return q.table }

// Close closes the connections.
func (q *Querier) Close() error { return q.conn.Close() }

// Result is what a query returned.
type Result struct {
	Columns []ResultColumn `json:"columns"`
	// Rows hold JSON-ready values: strings, numbers (json.Number for
	// decimals and big integers), booleans, nil, times as RFC 3339 strings,
	// json.RawMessage for JSON columns, slices and maps of those.
	Rows      [][]any `json:"rows"`
	RowCount  int     `json:"row_count"`
	ElapsedMS int64   `json:"elapsed_ms"`
}

// ResultColumn names a column and its ClickHouse type.
type ResultColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// QueryError is a query ClickHouse refused or could not run, with a kind a
// caller can act on.
type QueryError struct {
	// Kind: "BadQuery", "ReadOnly", "TooManyRows", "Timeout" or
	// "Unavailable".
	Kind string
	// Code is the ClickHouse error code, when there is one.
	Code int32
	Msg  string
}

func (e *QueryError) Error() string { return e.Msg }

// HTTPStatus is the status /v1/query answers the error with.
func (e *QueryError) HTTPStatus() int {
	switch e.Kind {
	case "BadQuery":
		return http.StatusBadRequest
	case "ReadOnly":
		return http.StatusForbidden
	case "TooManyRows":
		return http.StatusUnprocessableEntity
	case "Timeout":
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

// queryError sorts a ClickHouse error into a QueryError.
func (q *Querier) queryError(err error) error {
	var ex *ch.Exception
	if !errors.As(err, &ex) {
		if errors.Is(err, context.DeadlineExceeded) {
			return &QueryError{Kind: "Timeout", Msg: fmt.Sprintf("the query took longer than %v", q.lim.MaxExecutionTime)}
		}
		return &QueryError{Kind: "Unavailable", Msg: "ClickHouse: " + err.Error()}
	}
	msg := strings.TrimSpace(ex.Message)
	switch ex.Code {
	case 164: // READONLY
		return &QueryError{Kind: "ReadOnly", Code: ex.Code, Msg: "queries are read-only here (only SELECT, SHOW, DESCRIBE, EXPLAIN, without SETTINGS): ClickHouse refused: " + msg}
	case 396: // TOO_MANY_ROWS_OR_BYTES
		return &QueryError{Kind: "TooManyRows", Code: ex.Code, Msg: fmt.Sprintf("the result has more than %d rows: add a LIMIT or aggregate (%s)", q.lim.MaxResultRows, msg)}
	case 159, 160: // TIMEOUT_EXCEEDED, TOO_SLOW
		return &QueryError{Kind: "Timeout", Code: ex.Code, Msg: fmt.Sprintf("the query ran longer than %v: narrow the time range or add conditions (%s)", q.lim.MaxExecutionTime, msg)}
	case 516, 192, 194, 210, 209, 241:
		return &QueryError{Kind: "Unavailable", Code: ex.Code, Msg: "ClickHouse: " + msg}
	}
	return &QueryError{Kind: "BadQuery", Code: ex.Code, Msg: fmt.Sprintf("ClickHouse cannot run the query: %s (code %d)", msg, ex.Code)}
}

// Query runs one read-only SQL statement and returns its whole result
// (bounded by MaxResultRows).
func (q *Querier) Query(ctx context.Context, sql string) (*Result, error) {
	sql = strings.TrimSpace(sql)
	sql = strings.TrimSpace(strings.TrimSuffix(sql, ";"))
	if sql == "" {
		return nil, &QueryError{Kind: "BadQuery", Msg: "no SQL given"}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, q.lim.MaxExecutionTime+5*time.Second)
	defer cancel()
	ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{
		"max_execution_time":                        int(q.lim.MaxExecutionTime / time.Second),
		"max_result_rows":                           q.lim.MaxResultRows,
		"result_overflow_mode":                      "throw",
		"output_format_native_write_json_as_string": 1,
		// The server applies these limits with the query; readonly=1 then
		// refuses writes and any SETTINGS clause that would change them.
		"readonly": 1,
	}))
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, q.queryError(err)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	res := &Result{Columns: make([]ResultColumn, len(cts)), Rows: [][]any{}}
	isJSONCol := make([]bool, len(cts))
	for i, ct := range cts {
		res.Columns[i] = ResultColumn{Name: ct.Name(), Type: ct.DatabaseTypeName()}
		isJSONCol[i] = isJSON(ct.DatabaseTypeName()) || strings.HasPrefix(ct.DatabaseTypeName(), "Nullable(JSON")
	}
	for rows.Next() {
		dest := make([]any, len(cts))
		for i, ct := range cts {
			if isJSONCol[i] {
				dest[i] = new(string)
				continue
			}
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, &QueryError{Kind: "BadQuery", Msg: "reading the result: " + err.Error()}
		}
		out := make([]any, len(cts))
		for i := range dest {
			v := reflect.ValueOf(dest[i]).Elem().Interface()
			if isJSONCol[i] {
				out[i] = json.RawMessage(v.(string))
				continue
			}
			out[i] = plain(v)
		}
		res.Rows = append(res.Rows, out)
	}
	if err := rows.Err(); err != nil {
		return nil, q.queryError(err)
	}
	res.RowCount = len(res.Rows)
	res.ElapsedMS = time.Since(start).Milliseconds()
	return res, nil
}

// plain turns a scanned value into a JSON-ready one.
func plain(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string, bool, json.RawMessage:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case interface{ Any() any }: // Variant, Dynamic
		return plain(x.Any())
	case fmt.Stringer: // Decimal, UUID, IP
		s := x.String()
		if isNumber(s) {
			return json.Number(s)
		}
		return s
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return plain(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = plain(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[fmt.Sprint(plain(it.Key().Interface()))] = plain(it.Value().Interface())
		}
		return out
	case reflect.Struct:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return json.RawMessage(b)
	}
	return v
}

var numberRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func isNumber(s string) bool { return numberRE.MatchString(s) }
