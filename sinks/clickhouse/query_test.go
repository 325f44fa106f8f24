package clickhouse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
	"github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

// history fills an events table with 100 events and returns a Querier.
func history(t *testing.T) (*clickhouse.Querier, string) {
	t.Helper()
	dsn, _ := chtest.Database(t)
	s := open(t, clickhouse.Options{DSN: dsn, CreateTable: true, Batch: batch.Limits{MaxWait: 10 * time.Millisecond}})
	ds := make([]sinks.Delivery, 100)
	for i := range ds {
		id, ev := testEvent(i)
		ds[i] = sinks.Delivery{EventID: id, Event: ev}
	}
	for _, err := range s.DeliverBatch(context.Background(), ds) {
		if err != nil {
			t.Fatal(err)
		}
	}
	q, err := clickhouse.NewQuerier(context.Background(), dsn, "", clickhouse.QueryLimits{MaxResultRows: 50, MaxExecutionTime: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q, dsn
}

func TestQuery(t *testing.T) {
	q, dsn := history(t)
	ctx := context.Background()
	res, err := q.Query(ctx, "SELECT source, count() AS n, sum(data.order.amount::Int64) AS amount, max(time) AS last FROM events GROUP BY source ORDER BY source;")
	if err != nil {
		t.Fatal(err)
	}
	if res.RowCount != 5 || res.Columns[1].Name != "n" || res.Columns[1].Type != "UInt64" {
		t.Fatalf("result: %+v", res)
	}
	var out bytes.Buffer
	for _, f := range clickhouse.Formats {
		out.Reset()
		if err := clickhouse.WriteResult(&out, res, f); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:\n%s", f, out.String())
		want := map[string]string{
			"table":  "crm      20  970     2025-05-01T10:01:36.123Z",
			"json":   `"rows":[["crm",20,970,"2025-05-01T10:01:36.123Z"]`,
			"csv":    "crm,20,970,2025-05-01T10:01:36.123Z\n",
			"ndjson": `{"source":"crm","n":20,"amount":970,"last":"2025-05-01T10:01:36.123Z"}`,
		}[f]
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s output lacks %q", f, want)
		}
	}
	// JSON columns come out as JSON.
	res, err = q.Query(ctx, "SELECT data, data.order.amount AS amount, extensions FROM events WHERE id = 'ev-0000007'")
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	clickhouse.WriteResult(&out, res, "ndjson")
	if want := `{"data":{"customer":{"id":"C-7","region":"eu-west"},"order":{"amount":7,"currency":"EUR","id":"SO-7"}},"amount":7,"extensions":{"tenant":"t1"}}`; strings.TrimSpace(out.String()) != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}

	// Refused, with errors that say why.
	conn := chtest.Conn(t, dsn)
	for _, tc := range []struct{ sql, kind, says string }{
		{"INSERT INTO events (id) VALUES ('x')", "ReadOnly", "read-only"},
		{"DROP TABLE events", "ReadOnly", "read-only"},
		{"SELECT 1 SETTINGS max_result_rows = 0", "ReadOnly", "read-only"},
		{"SELEC count() FROM events", "BadQuery", "Syntax error"},
		{"SELECT nope FROM events", "BadQuery", "nope"},
		{"SELECT number FROM numbers(1000)", "TooManyRows", "more than 50 rows"},
		{"SELECT 1; DROP TABLE events", "BadQuery", ""},
		{"  ", "BadQuery", "no SQL"},
	} {
		_, err := q.Query(ctx, tc.sql)
		var qe *clickhouse.QueryError
		if !errors.As(err, &qe) || qe.Kind != tc.kind || !strings.Contains(qe.Msg, tc.says) {
			t.Errorf("%s: got %v, want a %s error saying %q", tc.sql, err, tc.kind, tc.says)
		}
	}
	if n := chtest.Count(t, conn, "SELECT count() FROM events"); n != 100 {
		t.Errorf("the table changed: %d rows", n)
	}
}

func TestQueryHandler(t *testing.T) {
	q, _ := history(t)
	srv := httptest.NewServer(clickhouse.QueryHandler(q))
	defer srv.Close()
	get := func(sql, format string) (int, string, string) {
		resp, err := http.Get(srv.URL + "/v1/query?" + url.Values{"sql": {sql}, "format": {format}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ct, body := get("SELECT count() AS n FROM events", "")
	if code != 200 || ct != "application/json" || !strings.Contains(body, `"rows":[[100]]`) {
		t.Errorf("GET: %d %s %s", code, ct, body)
	}
	code, ct, body = get("SELECT type, count() AS n FROM events GROUP BY type", "csv")
	if code != 200 || !strings.HasPrefix(ct, "text/csv") || body != "type,n\norder.created,100\n" {
		t.Errorf("GET csv: %d %s %q", code, ct, body)
	}
	post := func(ct, body string) (int, string) {
		resp, err := http.Post(srv.URL+"/v1/query?format=ndjson", ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("application/json", `{"sql":"SELECT id FROM events ORDER BY id LIMIT 2","format":"json"}`); code != 200 || !strings.Contains(body, `"rows":[["ev-0000000"],["ev-0000001"]]`) {
		t.Errorf("POST json: %d %s", code, body)
	}
	if code, body := post("text/plain", `SELECT id FROM events ORDER BY id LIMIT 1`); code != 200 || body != "{\"id\":\"ev-0000000\"}\n" {
		t.Errorf("POST text: %d %q", code, body)
	}
	for _, tc := range []struct {
		sql  string
		code int
		kind string
	}{
		{"DROP TABLE events", 403, "ReadOnly"},
		{"INSERT INTO events (id) SELECT 'x'", 403, "ReadOnly"},
		{"SELECT FROM WHERE", 400, "BadQuery"},
		{"SELECT number FROM numbers(100000)", 422, "TooManyRows"},
	} {
		code, _, body := get(tc.sql, "json")
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal([]byte(body), &e)
		if code != tc.code || e.Error.Code != tc.kind || e.Error.Message == "" {
			t.Errorf("%s: %d %s", tc.sql, code, body)
		}
	}
}

func TestSearchSQL(t *testing.T) {
	since := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	sql, err := clickhouse.Search{Source: []string{"erp"}, Type: []string{"a", "b'c"}, Since: since, Where: "data.x > 1", Limit: 5}.SQL("events")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"source = 'erp'", `type IN ('a', 'b\'c')`, "time >= toDateTime64('2025-05-01 10:00:00.000', 3, 'UTC')", "(data.x > 1)", "ORDER BY time DESC", "LIMIT 5"} {
		if !strings.Contains(sql, want) {
			t.Errorf("SQL lacks %q:\n%s", want, sql)
		}
	}
	if _, err := (clickhouse.Search{CountBy: []string{"source; DROP"}}).SQL("events"); err == nil {
		t.Error("a count-by that is not a column was accepted")
	}
	if _, err := (clickhouse.Search{Interval: time.Minute}).SQL("events"); err == nil {
		t.Error("--interval without --count-by was accepted")
	}
}

func TestSearchTimeSeries(t *testing.T) {
	q, _ := history(t)
	sql, err := clickhouse.Search{CountBy: []string{"source", "data.customer.region"}, Interval: time.Minute}.SQL(q.Table())
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	// 100 events over 10:00:00-10:01:39: two minutes, five sources.
	if res.RowCount != 10 {
		t.Errorf("%d rows, want 10", res.RowCount)
	}
	var out bytes.Buffer
	clickhouse.WriteResult(&out, res, "table")
	clickhouse.WriteChart(&out, res)
	t.Logf("\n%s", out.String())
	if !regexp.MustCompile(`(?m)^source=crm data.customer.region=eu-west +█▆  total 20, peak 12$`).MatchString(out.String()) {
		t.Errorf("no chart line for crm:\n%s", out.String())
	}
}
