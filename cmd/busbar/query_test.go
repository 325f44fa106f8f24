package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
	"github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

// chHistory is an events table holding 60 events, one a second from
// 10:00:00, sources a, b, c in turn, data.amount = i.
func chHistory(t *testing.T) string {
	t.Helper()
	dsn, _ := chtest.Database(t)
	ctx := context.Background()
	s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateTable: true, Batch: batch.Limits{MaxWait: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ds []sinks.Delivery
	for i := range 60 {
		ds = append(ds, sinks.Delivery{EventID: fmt.Sprint(i), Event: fmt.Appendf(nil,
			`{"specversion":"1.0","id":"e%02d","source":"%c","type":"order.created","time":"2025-05-01T10:00:%02dZ","busbarbus":"retail","data":{"amount":%d}}`,
			i, 'a'+i%3, i, i)})
	}
	for _, err := range s.DeliverBatch(ctx, ds) {
		if err != nil {
			t.Fatal(err)
		}
	}
	return dsn
}

func run(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestQueryCmd(t *testing.T) {
	dsn := chHistory(t)
	out, err := run(t, newQueryCmd(), "--clickhouse", dsn, "SELECT source, count() AS n FROM events GROUP BY source ORDER BY source")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "a       20\nb       20\nc       20\n(3 rows") {
		t.Errorf("table output:\n%s", out)
	}
	out, err = run(t, newQueryCmd(), "--clickhouse", dsn, "-o", "csv", "SELECT id, data.amount AS amount FROM events WHERE data.amount > 57 ORDER BY id")
	if err != nil || out != "id,amount\ne58,58\ne59,59\n" {
		t.Errorf("csv: %v %q", err, out)
	}
	// The DSN from the environment, NDJSON.
	t.Setenv("BUSBAR_CLICKHOUSE", dsn)
	out, err = run(t, newQueryCmd(), "-o", "ndjson", "SELECT count() AS n FROM events")
	if err != nil || out != "{\"n\":60}\n" {
		t.Errorf("ndjson: %v %q", err, out)
	}
	// From a config's clickhouse target.
	t.Setenv("BUSBAR_CLICKHOUSE", "")
	cfg := filepath.Join(t.TempDir(), "busbar.yaml")
	os.WriteFile(cfg, []byte("rules:\n  - name: history\n    targets:\n      - id: ch\n        type: clickhouse\n        clickhouse:\n          dsn: "+dsn+"\n"), 0o644)
	out, err = run(t, newQueryCmd(), "--config", cfg, "-o", "json", "SELECT max(time) AS last FROM events")
	if err != nil || !strings.Contains(out, `"rows":[["2025-05-01T10:00:59.000Z"]]`) {
		t.Errorf("from config: %v %s", err, out)
	}
	// Writes are refused, bad SQL explained.
	if _, err := run(t, newQueryCmd(), "--clickhouse", dsn, "DROP TABLE events"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("DROP: %v", err)
	}
	if _, err := run(t, newQueryCmd(), "--clickhouse", dsn, "INSERT INTO events (id) VALUES ('x')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("INSERT: %v", err)
	}
	if _, err := run(t, newQueryCmd(), "--clickhouse", dsn, "SELECT * FORM events"); err == nil || !strings.Contains(err.Error(), "Syntax error") {
		t.Errorf("bad SQL: %v", err)
	}
	// Through a running busbar's /v1/query.
	q, err := clickhouse.NewQuerier(context.Background(), dsn, "", clickhouse.QueryLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv := httptest.NewServer(clickhouse.QueryHandler(q))
	defer srv.Close()
	out, err = run(t, newQueryCmd(), "--server", srv.URL, "SELECT count() AS n FROM events")
	if err != nil || !strings.Contains(out, "60") {
		t.Errorf("--server: %v %s", err, out)
	}
	if _, err := run(t, newQueryCmd(), "--server", srv.URL, "DROP TABLE events"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("--server DROP: %v", err)
	}
}

func TestEventsCmd(t *testing.T) {
	dsn := chHistory(t)
	out, err := run(t, newEventsCmd(), "--clickhouse", dsn, "--source", "a", "--where", "data.amount > 50", "--limit", "2", "-o", "csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2025-05-01T10:00:57.000Z,a,order.created,,e57,") || !strings.HasPrefix(lines[2], "2025-05-01T10:00:54.000Z,a,") {
		t.Errorf("list:\n%s", out)
	}
	out, err = run(t, newEventsCmd(), "--clickhouse", dsn, "--bus", "retail", "--since", "2025-05-01T10:00:30Z", "--count-by", "source", "-o", "csv")
	if err != nil || !strings.HasPrefix(out, "source,events\n") || !strings.Contains(out, "\na,10\n") || !strings.Contains(out, "\nb,10\n") || !strings.Contains(out, "\nc,10\n") {
		t.Errorf("count-by: %v\n%s", err, out)
	}
	out, err = run(t, newEventsCmd(), "--clickhouse", dsn, "--count-by", "source,type", "--interval", "30s")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "source=a type=order.created  ██  total 20, peak 10") {
		t.Errorf("time series:\n%s", out)
	}
	out, err = run(t, newEventsCmd(), "--type", "x", "--since", "1h", "--sql")
	if err != nil || !strings.Contains(out, "type = 'x'") || !strings.Contains(out, "time >= toDateTime64(") {
		t.Errorf("--sql: %v %s", err, out)
	}
	if _, err := run(t, newEventsCmd(), "--clickhouse", dsn, "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Errorf("bad --since: %v", err)
	}
	if _, err := run(t, newEventsCmd(), "--clickhouse", dsn, "--where", "data.amount >"); err == nil || !strings.Contains(err.Error(), "Syntax error") {
		t.Errorf("bad --where: %v", err)
	}
}

// TestServeQueryEndpoint: a busbar whose config has a clickhouse target
// serves read-only /v1/query over its history; one without answers 503.
func TestServeQueryEndpoint(t *testing.T) {
	dsn := chHistory(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
rules:
  - name: history
    targets:
      - id: clickhouse
        type: clickhouse
        clickhouse: {dsn: %q}
`, dsn))
	base, _ := startInProcess(t, cfg, filepath.Join(dir, "data"))
	out := mustPost(t, base+"/v1/query", "application/json", []byte(`{"sql":"SELECT count() AS n FROM events WHERE bus = 'retail'"}`), nil)
	if rows, _ := out["rows"].([]any); len(rows) != 1 || fmt.Sprint(rows[0]) != "[60]" {
		t.Fatalf("query answer: %v", out)
	}
	resp, err := http.Post(base+"/v1/query", "text/plain", strings.NewReader("DROP TABLE events"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("DROP through /v1/query: %d, want 403", resp.StatusCode)
	}

	dir2 := t.TempDir()
	base2, _ := startInProcess(t, writeConfig(t, dir2, "rules: []\n"), filepath.Join(dir2, "data"))
	resp, err = http.Get(base2 + "/v1/query?sql=SELECT+1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no clickhouse target: %d, want 503", resp.StatusCode)
	}
}
