// Package clickhouse benchmarks the ClickHouse sink alone: many goroutines
// calling Deliver the way the dispatcher does, ~300-byte CloudEvents, into
// the default events table of a real server (the dev server of make test,
// or CLICKHOUSE_ADDR). Results: bench/RESULTS.md.
//
//	go test -run '^$' -bench . -benchtime 1000000x ./bench/clickhouse
package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks"
	"github.com/busbar/busbar/sinks/batch"
	"github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

var sources = []string{"erp.sap", "crm", "shop", "wms", "finance"}

// event is a CloudEvent of about 300 bytes.
func event(i int) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"ev-%010d","source":%q,"type":"order.created","subject":"SO-%d","time":"2025-05-01T10:%02d:%02d.123Z","datacontenttype":"application/json","busbaringesttime":"2025-05-01T10:00:00Z","data":{"order":{"id":"SO-%d","amount":%d,"currency":"EUR"},"customer":{"id":"C-%d","region":"eu-west"}}}`,
		i, sources[i%len(sources)], i, (i/60)%60, i%60, i, i%1000, i%977)
}

func BenchmarkSink(b *testing.B) {
	for _, c := range []struct {
		callers, rows, inFlight int
	}{
		{10_000, 50_000, 4},  // the clickhouse target's default concurrency
		{50_000, 25_000, 4},  // enough callers to keep two batches in flight
		{100_000, 50_000, 4}, // the most concurrency allows
	} {
		b.Run(fmt.Sprintf("callers=%d/max_rows=%d", c.callers, c.rows), func(b *testing.B) {
			dsn, _ := chtest.Database(b)
			ctx := context.Background()
			s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateTable: true,
				Batch: batch.Limits{MaxRows: c.rows, MaxInFlight: c.inFlight, Callers: c.callers}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			evs := make([][]byte, b.N)
			size := 0
			for i := range evs {
				evs[i] = event(i)
				size += len(evs[i])
			}
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range min(c.callers, b.N) {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= b.N {
							return
						}
						if err := s.Deliver(ctx, sinks.Delivery{EventID: fmt.Sprint(i), Event: evs[i]}); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d deliveries failed", failed.Load())
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
			b.ReportMetric(float64(size)/float64(b.N), "B/event")
			if got := chtest.Count(b, chtest.Conn(b, dsn), "SELECT count() FROM events"); got != uint64(b.N) {
				b.Fatalf("count() = %d, want %d", got, b.N)
			}
		})
	}
}
