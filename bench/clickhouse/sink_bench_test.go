// Package clickhouse benchmarks the ClickHouse sink alone: many goroutines
// calling Deliver the way the dispatcher does, ~300-byte CloudEvents, into
// the default events table of a real server (the dev server of make test,
// or CLICKHOUSE_ADDR). Results: bench/RESULTS.md.
//
//	go test -run '^$' -bench . -benchtime 1000000x ./bench/clickhouse
package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
		dataType                string
		async                   bool
	}{
		{10_000, 50_000, 4, "json", false},  // the clickhouse target's default concurrency
		{50_000, 25_000, 4, "json", false},  // enough callers to keep two batches in flight
		{100_000, 50_000, 4, "json", false}, // the most concurrency allows
		{50_000, 25_000, 4, "string", false},
		{10_000, 50_000, 4, "json", true}, // server-side async inserts
	} {
		name := fmt.Sprintf("callers=%d/max_rows=%d/data=%s", c.callers, c.rows, c.dataType)
		if c.async {
			name += "/async"
		}
		b.Run(name, func(b *testing.B) {
			dsn, _ := chtest.Database(b)
			ctx := context.Background()
			s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateTable: true, DataType: c.dataType, AsyncInsert: c.async,
				Batch: batch.Limits{MaxRows: c.rows, MaxInFlight: c.inFlight, Callers: c.callers}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			evs := make([]sinks.Delivery, b.N)
			size := 0
			for i := range evs {
				evs[i] = sinks.Delivery{EventID: strconv.Itoa(i), Event: event(i)}
				size += len(evs[i].Event)
			}
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			srv0, cli0 := serverCPU(), clientCPU()
			start := time.Now()
			var wg sync.WaitGroup
			for range min(c.callers, b.N) {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= b.N {
							return
						}
						if err := s.Deliver(ctx, evs[i]); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			report(b, start, srv0, cli0, failed.Load(), int64(size))
			if got := chtest.Count(b, chtest.Conn(b, dsn), "SELECT count() FROM events"); got != uint64(b.N) {
				b.Fatalf("count() = %d, want %d", got, b.N)
			}
		})
	}
}

// report stops the timer and reports a run that started at start, with
// the server's and this process's CPU then, the deliveries that failed
// and the bytes of the events sent.
func report(b *testing.B, start time.Time, srv0, cli0 time.Duration, failed, size int64) {
	b.Helper()
	el := time.Since(start)
	srv, cli := serverCPU()-srv0, clientCPU()-cli0
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d deliveries failed", failed)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "rows/s")
	b.ReportMetric(float64(size)/float64(b.N), "B/event")
	b.ReportMetric(cli.Seconds()*1e6/float64(b.N), "client-µs/row")
	if srv0 >= 0 {
		b.ReportMetric(srv.Seconds()*1e6/float64(b.N), "server-µs/row")
	}
}

// clientCPU is the CPU time (user and system) this process has used.
func clientCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the CPU time the dev server (deployments/dev/clickhouse.sh)
// has used, from /proc; negative when it is not running here (another
// server given by CLICKHOUSE_ADDR).
func serverCPU() time.Duration {
	if os.Getenv("CLICKHOUSE_ADDR") != "" {
		return -1
	}
	dir := os.Getenv("CLICKHOUSE_DIR")
	if dir == "" {
		wd, _ := os.Getwd()
		dir = filepath.Join(wd, "..", "..", ".data", "clickhouse")
	}
	pid, err := os.ReadFile(filepath.Join(dir, "server.pid"))
	if err != nil {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 14th and 15th of the line, in clock ticks (100 per second).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// BenchmarkSinkBatch feeds the sink the way a pipe does: inFlight
// goroutines (the pipe's senders, one per batch.max_in_flight) each
// handing whole slices of events to DeliverBatch, with Callers 0 (a pipe
// does not count callers) and the pipe's batch limits. Each sender reuses
// its slice, writing the next ids into the events (event(i)'s other
// fields repeat), so the live heap is what a pipe holds (its unsettled
// records), not b.N events: with a few hundred MB live the GC would
// hardly run and every large buffer would be fresh, page-faulted memory.
func BenchmarkSinkBatch(b *testing.B) {
	for _, c := range []struct {
		slice, rows, inFlight int
		dataType              string
	}{
		{50_000, 50_000, 4, "json"}, // the pipe's defaults
		{25_000, 25_000, 4, "json"},
		{50_000, 50_000, 4, "string"},
		{25_000, 25_000, 4, "string"},
	} {
		name := fmt.Sprintf("senders=%d/slice=%d/max_rows=%d/data=%s", c.inFlight, c.slice, c.rows, c.dataType)
		b.Run(name, func(b *testing.B) {
			dsn, _ := chtest.Database(b)
			ctx := context.Background()
			s, err := clickhouse.Open(ctx, clickhouse.Options{DSN: dsn, CreateTable: true, DataType: c.dataType,
				Batch: batch.Limits{MaxRows: c.rows, MaxInFlight: c.inFlight}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Each sender's slice, and where each event's id digits are.
			slices := make([][]sinks.Delivery, c.inFlight)
			idAt := make([][]int, c.inFlight)
			for k := range slices {
				n := min(c.slice, b.N) // b.N is 1 in the first run
				slices[k] = make([]sinks.Delivery, n)
				idAt[k] = make([]int, n)
				for j := range slices[k] {
					ev := event(k*c.slice + j)
					slices[k][j] = sinks.Delivery{EventID: "ev", Event: ev}
					idAt[k][j] = bytes.Index(ev, []byte(`"id":"ev-`)) + len(`"id":"ev-`)
				}
			}
			var next, size atomic.Int64
			var failed atomic.Int64
			runtime.GC()
			b.ResetTimer()
			srv0, cli0 := serverCPU(), clientCPU()
			start := time.Now()
			var wg sync.WaitGroup
			for k := range c.inFlight {
				wg.Go(func() {
					ds := slices[k]
					for {
						lo := int(next.Add(int64(len(ds))) - int64(len(ds)))
						if lo >= b.N {
							return
						}
						ds := ds[:min(len(ds), b.N-lo)]
						n := 0
						for j := range ds {
							id := ds[j].Event[idAt[k][j] : idAt[k][j]+10]
							for d, v := 9, lo+j; d >= 0; d, v = d-1, v/10 {
								id[d] = byte('0' + v%10)
							}
							n += len(ds[j].Event)
						}
						size.Add(int64(n))
						for _, err := range s.DeliverBatch(ctx, ds) {
							if err != nil {
								failed.Add(1)
							}
						}
					}
				})
			}
			wg.Wait()
			report(b, start, srv0, cli0, failed.Load(), size.Load())
			conn := chtest.Conn(b, dsn)
			if got := chtest.Count(b, conn, "SELECT count() FROM events"); got != uint64(b.N) {
				b.Fatalf("count() = %d, want %d", got, b.N)
			}
			if got := chtest.Count(b, conn, "SELECT uniqExact(id) FROM events"); got != uint64(b.N) {
				b.Fatalf("uniqExact(id) = %d, want %d", got, b.N)
			}
		})
	}
}
