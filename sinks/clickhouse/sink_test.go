package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
	"github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

var sources = []string{"erp.sap", "crm", "shop", "wms", "finance"}

// testEvent is a ~300-byte CloudEvent; its amount is i % 1000.
func testEvent(i int) (id string, ev []byte) {
	id = fmt.Sprintf("ev-%07d", i)
	return id, fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":%q,"type":"order.created","subject":"SO-%d","time":"2025-05-01T10:%02d:%02d.123Z","datacontenttype":"application/json","busbaringesttime":"2025-05-01T10:00:00Z","tenant":"t%d","data":{"order":{"id":"SO-%d","amount":%d,"currency":"EUR"},"customer":{"id":"C-%d","region":"eu-west"}}}`,
		id, sources[i%len(sources)], i, (i/60)%60, i%60, i%3, i, i%1000, i%977)
}

func open(t *testing.T, o clickhouse.Options) *clickhouse.Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// deliverAll delivers events [0, n) from `callers` goroutines, each event
// retried on a retryable error as the dispatcher would, and returns the
// permanent failures by index.
func deliverAll(t *testing.T, s *clickhouse.Sink, n, callers int, event func(int) (string, []byte)) map[int]error {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	failed := map[int]error{}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id, ev := event(i)
				for attempt := 1; ; attempt++ {
					err := s.Deliver(context.Background(), sinks.Delivery{EventID: id, Event: ev})
					if err == nil {
						break
					}
					if sinks.IsPermanent(err) {
						mu.Lock()
						failed[i] = err
						mu.Unlock()
						break
					}
					if attempt > 100 {
						t.Errorf("event %d: still failing: %v", i, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return failed
}

func TestEventsTable(t *testing.T) {
	dsn, db := chtest.Database(t)
	const n = 200_000
	s := open(t, clickhouse.Options{
		DSN: dsn, CreateTable: true, DataType: "json", TTL: 10 * 365 * 24 * time.Hour, // the events are from 2025
		Batch: batch.Limits{MaxRows: 20_000, MaxInFlight: 4, Callers: 4000},
	})
	if failed := deliverAll(t, s, n, 4000, testEvent); len(failed) > 0 {
		t.Fatalf("%d events failed, e.g. %v", len(failed), first(failed))
	}
	conn := chtest.Conn(t, dsn)
	if got := chtest.Count(t, conn, "SELECT count() FROM events"); got != n {
		t.Fatalf("count() = %d, want %d", got, n)
	}
	for i, src := range sources {
		want := uint64(n / len(sources))
		if i < n%len(sources) {
			want++
		}
		if got := chtest.Count(t, conn, "SELECT count() FROM events WHERE source = ?", src); got != want {
			t.Errorf("source %s: %d rows, want %d", src, got, want)
		}
	}
	var wantSum, wantBig uint64
	for i := range n {
		wantSum += uint64(i % 1000)
		if i%1000 > 500 {
			wantBig++
		}
	}
	if got := chtest.Count(t, conn, "SELECT toUInt64(sum(data.order.amount::Int64)) FROM events"); got != wantSum {
		t.Errorf("sum(data.order.amount) = %d, want %d", got, wantSum)
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM events WHERE data.order.amount > 500"); got != wantBig {
		t.Errorf("data.order.amount > 500: %d rows, want %d", got, wantBig)
	}
	// Attributes land in their columns.
	var id, src, typ, subject, tenant, ts, ingest string
	err := conn.QueryRow(context.Background(), "SELECT id, source, type, subject, extensions['tenant'], toString(time), toString(ingest_time) FROM events WHERE id = 'ev-0000061'").
		Scan(&id, &src, &typ, &subject, &tenant, &ts, &ingest)
	if err != nil {
		t.Fatal(err)
	}
	if src != "crm" || typ != "order.created" || subject != "SO-61" || tenant != "t1" || ts != "2025-05-01 10:01:01.123" || ingest != "2025-05-01 10:00:00.000" {
		t.Errorf("row of ev-0000061: %s %s %s %s %s %s", src, typ, subject, tenant, ts, ingest)
	}
	var create string
	if err := conn.QueryRow(context.Background(), "SELECT create_table_query FROM system.tables WHERE database = ? AND name = 'events'", db).Scan(&create); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TTL", "PARTITION BY toDate(ingest_time)", "ORDER BY (source, type, time, id)", "non_replicated_deduplication_window"} {
		if !strings.Contains(create, want) {
			t.Errorf("created table lacks %q:\n%s", want, create)
		}
	}
}

func first(m map[int]error) error {
	for _, e := range m {
		return e
	}
	return nil
}

// TestBadEventsFailAlone: events that cannot be stored fail permanently and
// alone, whether the sink sees it (not JSON, no id, a time ClickHouse
// cannot hold) or only ClickHouse does (a number the JSON type cannot
// read): the batch around them is written.
func TestBadEventsFailAlone(t *testing.T) {
	dsn, _ := chtest.Database(t)
	s := open(t, clickhouse.Options{DSN: dsn, CreateTable: true, Batch: batch.Limits{MaxRows: 100, Callers: 100}})
	bad := map[int]string{
		3:  `not json`,
		17: `{"specversion":"1.0","source":"x","type":"y"}`,
		42: `{"specversion":"1.0","id":"old","source":"x","type":"y","time":"1066-10-14T09:00:00Z"}`,
		77: `{"specversion":"1.0","id":"huge","source":"x","type":"y","data":{"n":123456789012345678901234567890}}`,
	}
	failed := deliverAll(t, s, 100, 100, func(i int) (string, []byte) {
		if ev, ok := bad[i]; ok {
			return fmt.Sprint("bad-", i), []byte(ev)
		}
		return testEvent(i)
	})
	if len(failed) != len(bad) {
		t.Errorf("%d events failed, want %d: %v", len(failed), len(bad), failed)
	}
	for i := range bad {
		if failed[i] == nil {
			t.Errorf("bad event %d was accepted", i)
		} else {
			t.Logf("event %d: %v", i, failed[i])
		}
	}
	if got := chtest.Count(t, chtest.Conn(t, dsn), "SELECT count() FROM events"); got != 96 {
		t.Fatalf("count() = %d, want 96", got)
	}
}

// TestDataShapes: data that is not an object, data_base64 and no data are
// stored too.
func TestDataShapes(t *testing.T) {
	dsn, _ := chtest.Database(t)
	s := open(t, clickhouse.Options{DSN: dsn, CreateTable: true, Batch: batch.Limits{MaxWait: 10 * time.Millisecond}})
	evs := []string{
		`{"specversion":"1.0","id":"a","source":"s","type":"t","data":[1,2,3]}`,
		`{"specversion":"1.0","id":"b","source":"s","type":"t","data":"he said \"hi\""}`,
		`{"specversion":"1.0","id":"c","source":"s","type":"t","data_base64":"aGVsbG8="}`,
		`{"specversion":"1.0","id":"d","source":"s","type":"t"}`,
		`{"specversion":"1.0","id":"e","source":"s","type":"t","data":{"a.b":1,"a":{"b":2}}}`,
	}
	ds := make([]sinks.Delivery, len(evs))
	for i, e := range evs {
		ds[i] = sinks.Delivery{EventID: string(rune('a' + i)), Event: []byte(e)}
	}
	for i, err := range s.DeliverBatch(context.Background(), ds) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	conn := chtest.Conn(t, dsn)
	want := map[string]string{"a": `{"value":[1,2,3]}`, "b": `{"value":"he said \"hi\""}`, "c": `{"data_base64":"aGVsbG8="}`, "d": `{}`}
	for id, w := range want {
		var got string
		if err := conn.QueryRow(context.Background(), "SELECT toString(data) FROM events WHERE id = ?", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("data of %s = %s, want %s", id, got, w)
		}
	}
}

func TestCustomTable(t *testing.T) {
	dsn, _ := chtest.Database(t)
	conn := chtest.Conn(t, dsn)
	err := conn.Exec(context.Background(), `CREATE TABLE orders (
		order_id String, amount Int32, price Decimal(10, 2), region LowCardinality(String),
		created DateTime64(3, 'UTC'), paid Bool, note Nullable(String), cents Int64, status Enum8('new' = 1, 'paid' = 2)
	) ENGINE = MergeTree ORDER BY order_id SETTINGS non_replicated_deduplication_window = 1000`)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, clickhouse.Options{
		DSN: dsn, Table: "orders",
		Columns: []config.ClickHouseColumn{
			{Name: "order_id", Path: "$.data.id"},
			{Name: "amount", Path: "$.data.amount"},
			{Name: "price", Path: "$.data['price']"},
			{Name: "region", Path: "$.data.region", Default: "unknown"},
			{Name: "created", Path: "$.time"},
			{Name: "paid", Path: "$.data.paid"},
			{Name: "note", Path: "$.data.note"},
			{Name: "cents", Expr: "data.amount * 100"},
			{Name: "status", Path: "$.data.status"},
		},
		Batch: batch.Limits{MaxRows: 10, MaxWait: 20 * time.Millisecond},
	})
	event := func(i int, amount, status string) sinks.Delivery {
		return sinks.Delivery{EventID: fmt.Sprint(i), Event: fmt.Appendf(nil,
			`{"specversion":"1.0","id":"%d","source":"shop","type":"order.created","time":"2025-05-01T10:00:00Z","data":{"id":"SO-%d","amount":%s,"price":"12.50","paid":true,"status":%q%s}}`,
			i, i, amount, status, map[bool]string{true: `,"region":"eu"`}[i%2 == 0])}
	}
	ds := []sinks.Delivery{
		event(1, "10", "new"), event(2, "20", "paid"),
		event(3, `"abc"`, "new"),       // not a number
		event(4, "30", "shipped"),      // not an enum value
		event(5, "99999999999", "new"), // out of Int32
		event(6, "40", "new"),
	}
	errs := s.DeliverBatch(context.Background(), ds)
	for i, err := range errs {
		wantBad := i == 2 || i == 3 || i == 4
		if wantBad != sinks.IsPermanent(err) || (!wantBad && err != nil) {
			t.Errorf("event %d: %v", i+1, err)
		}
		if wantBad {
			t.Logf("event %d: %v", i+1, err)
		}
	}
	if !strings.Contains(fmt.Sprint(errs[2]), "column amount (Int32)") {
		t.Errorf("the error does not name the column and type: %v", errs[2])
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM orders"); got != 3 {
		t.Fatalf("count() = %d, want 3", got)
	}
	if got := chtest.Count(t, conn, "SELECT toUInt64(sum(cents)) FROM orders"); got != 7000 {
		t.Errorf("sum(cents) = %d, want 7000", got)
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM orders WHERE region = 'unknown' AND note IS NULL AND paid AND price = 12.5"); got != 1 {
		t.Errorf("defaults and NULLs: %d rows, want 1", got)
	}
}

func TestHealthcheck(t *testing.T) {
	dsn, _ := chtest.Database(t)
	conn := chtest.Conn(t, dsn)
	if err := conn.Exec(context.Background(), "CREATE TABLE wrong (id String, source UInt8, data String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(context.Background(), "CREATE TABLE orders (id String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    clickhouse.Options
		want []string
	}{
		{"unreachable", clickhouse.Options{DSN: "clickhouse://127.0.0.1:1/default"}, []string{"unreachable", "127.0.0.1:1"}},
		// Over HTTP: the dev server (chdb) exits on a failed native login.
		{"auth", clickhouse.Options{DSN: "http://nobody:wrong@" + chtest.HTTPAddr(t) + "/default"}, []string{"authentication failed", `"nobody"`}},
		{"missing", clickhouse.Options{DSN: dsn, Table: "nope", CreateTable: false}, []string{"nope does not exist", "create_table is false"}},
		{"mismatch", clickhouse.Options{DSN: dsn, Table: "wrong", CreateTable: true}, []string{"column source is UInt8, want LowCardinality(String)", "column type is missing", "column time is missing"}},
		{"mapping", clickhouse.Options{DSN: dsn, Table: "orders", Columns: []config.ClickHouseColumn{{Name: "id", Path: "$.id"}, {Name: "total", Path: "$.data.total"}}}, []string{"column total does not exist"}},
		{"bad dsn", clickhouse.Options{DSN: "clickhouse://u:s3cret@[::1"}, []string{"clickhouse dsn"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := clickhouse.Open(ctx, tc.o)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestRestartDedup stops ClickHouse in the middle of a stream and starts it
// again: every event is stored exactly once. The table is a plain MergeTree,
// so only the insert tokens can have dropped the retried batches that had
// landed before the connection broke.
func TestRestartDedup(t *testing.T) {
	srv := chtest.StartServer(t)
	dsn, _ := chtest.DatabaseAt(t, srv.Addr())
	conn := chtest.Conn(t, dsn)
	ddl := strings.Replace(clickhouse.EventsDDL("events", "JSON", 0), "ReplacingMergeTree", "MergeTree", 1)
	if err := conn.Exec(context.Background(), ddl); err != nil {
		t.Fatal(err)
	}
	const n = 60_000
	s := open(t, clickhouse.Options{
		DSN: dsn, InsertTimeout: 5 * time.Second,
		Batch: batch.Limits{MaxRows: 1000, MaxInFlight: 4, Callers: 2000, RetryInitial: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	})
	var delivered atomic.Int64
	done := make(chan map[int]error)
	go func() {
		done <- deliverAll(t, s, n, 2000, func(i int) (string, []byte) {
			delivered.Add(1)
			return testEvent(i)
		})
	}()
	for delivered.Load() < n/3 {
		time.Sleep(5 * time.Millisecond)
	}
	srv.Stop()
	stoppedAt := delivered.Load()
	time.Sleep(2 * time.Second)
	if d := delivered.Load() - stoppedAt; d > 2000 {
		t.Errorf("%d events were taken while ClickHouse was down; want at most the 2000 callers' (backpressure)", d)
	}
	srv.Start()
	failed := <-done
	if len(failed) > 0 {
		t.Fatalf("%d events failed, e.g. %v", len(failed), first(failed))
	}
	conn = chtest.Conn(t, dsn)
	if got := chtest.Count(t, conn, "SELECT uniqExact(id) FROM events"); got != n {
		t.Errorf("%d distinct events stored, want %d: events were lost", got, n)
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM events"); got != n {
		t.Errorf("%d rows for %d events: retried batches were stored twice", got, n)
	}
}

// TestCloseWhileDown: Close during an outage returns, and the events in
// hand get a retryable error (they stay queued upstream).
func TestCloseWhileDown(t *testing.T) {
	srv := chtest.StartServer(t)
	dsn, _ := chtest.DatabaseAt(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateTable: true, InsertTimeout: 2 * time.Second, Batch: batch.Limits{MaxWait: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	id, ev := testEvent(1)
	got := make(chan error, 1)
	go func() { got <- s.Deliver(context.Background(), sinks.Delivery{EventID: id, Event: ev}) }()
	time.Sleep(500 * time.Millisecond)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("Close hangs while ClickHouse is down")
	}
	if err := <-got; err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Deliver: %v, want a retryable error", err)
	}
	if !errors.Is(s.Deliver(context.Background(), sinks.Delivery{EventID: id, Event: ev}), batch.ErrClosed) {
		t.Error("Deliver after Close did not say closed")
	}
}
