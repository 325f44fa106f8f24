package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks/batch"
)

func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"ev-%010d","source":"erp.sap","type":"order.created","subject":"SO-%d","time":"2025-05-01T10:00:00.123Z","datacontenttype":"application/json","busbaringesttime":"2025-05-01T10:00:00Z","data":{"order":{"id":"SO-%d","amount":%d,"currency":"EUR"},"customer":{"id":"C-%d","region":"eu-west"}}}`,
		i, i, i, i%1000, i%977)
}

// BenchmarkParseEvent is the sink's per-event work in Deliver: a ~300-byte
// CloudEvent to a row of the events table.
func BenchmarkParseEvent(b *testing.B) {
	ev := benchEvent(42)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if _, err := parseEvent(ev, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatching is Deliver without the server: 10,000 goroutines
// parsing events and waiting in batches whose flush only counts them. It
// bounds what the sink can pass on to ClickHouse on this machine.
func BenchmarkBatching(b *testing.B) {
	const callers = 10_000
	var written atomic.Int64
	bt := batch.New(batch.Limits{MaxRows: 50_000, Callers: callers}, func(_ context.Context, bt *batch.Batch[row]) error {
		written.Add(int64(len(bt.Items)))
		return nil
	})
	defer bt.Close()
	evs := make([][]byte, b.N)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range min(callers, b.N) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				ev, err := parseEvent(evs[i], start)
				if err != nil {
					b.Error(err)
					return
				}
				if err := bt.Add(context.Background(), row{ev: ev}, len(evs[i])); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rows/s")
}
