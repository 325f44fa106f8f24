package clickhouse_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/engine"
	_ "github.com/busbar/busbar/pipeline/transport/natsjs"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

// TestThroughTheBus sends events the whole way: published to a bus, routed
// by a rule, queued, dispatched to the clickhouse target.
func TestThroughTheBus(t *testing.T) {
	dsn, _ := chtest.Database(t)
	src := fmt.Sprintf(`
rules:
  - name: history
    pattern: '{"source": ["erp.sap", "crm", "shop"]}'
    targets:
      - id: clickhouse
        type: clickhouse
        concurrency: 500
        batch:
          max_wait: 50ms
        clickhouse:
          dsn: %s
`, dsn)
	cfg, err := config.Parse([]byte(src), "busbar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := engine.Start(ctx, cfg, engine.Options{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())

	const n = 5000
	matching := 0
	for from := 0; from < n; from += 500 {
		recs := make([]pipeline.Record, 0, 500)
		for i := from; i < from+500; i++ {
			id, ev := testEvent(i)
			recs = append(recs, pipeline.Record{ID: id, Event: ev, IngestTime: time.Now()})
			if s := sources[i%len(sources)]; s == "erp.sap" || s == "crm" || s == "shop" {
				matching++
			}
		}
		if err := e.Publish(ctx, config.DefaultBus, recs); err != nil {
			t.Fatal(err)
		}
	}
	conn := chtest.Conn(t, dsn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := chtest.Count(t, conn, "SELECT count() FROM events")
		if got == uint64(matching) {
			break
		}
		if got > uint64(matching) || time.Now().After(deadline) {
			t.Fatalf("%d rows, want the %d matching events", got, matching)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM events WHERE source IN ('wms', 'finance')"); got != 0 {
		t.Errorf("%d events the rule does not match were stored", got)
	}
	if got := chtest.Count(t, conn, "SELECT count() FROM events WHERE bus = 'default'"); got != uint64(matching) {
		t.Errorf("%d of %d rows name the bus they came through", got, matching)
	}
}
