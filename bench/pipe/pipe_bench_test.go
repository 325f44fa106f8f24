package pipe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/pipes"
	_ "github.com/busbar/busbar/sinks/clickhouse"
	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

const topic = "web.clicks"

// keep reports whether record i is a click, kept by the pattern: about
// half, in no regular order (the same rule as the e2e test's).
func keep(i int) bool { return (uint32(i)*2654435761)>>16&1 == 0 }

// record i: ~70 bytes of JSON.
func record(i int) []byte {
	kind := "view"
	if keep(i) {
		kind = "click"
	}
	return fmt.Appendf(nil, `{"kind":%q,"user":"u%d","page":"/p/%d","ms":%d}`, kind, i%5000, i%300, i%1000)
}

// nopDLQ counts dead letters; a benchmark run must have none.
type nopDLQ struct{ n int }

func (d *nopDLQ) Publish(_ string, msgs ...*message.Message) error { d.n += len(msgs); return nil }
func (d *nopDLQ) Close() error                                     { return nil }

func BenchmarkPipe(b *testing.B) {
	for _, c := range []struct {
		name, dataType string
		rows, inFlight int
		partitions     int
	}{
		{"json", config.ClickHouseDataJSON, 50_000, 4, 6},
		{"string", config.ClickHouseDataString, 50_000, 4, 6},
	} {
		b.Run(fmt.Sprintf("data=%s/max_rows=%d/in_flight=%d", c.dataType, c.rows, c.inFlight), func(b *testing.B) {
			n := b.N
			dsn, db := chtest.Database(b)
			cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(c.partitions), topic))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			want := produce(b, cl, n)

			cfg := &config.Config{Pipes: []config.Pipe{{
				Name: "clicks",
				Source: config.PipeSource{Type: config.TypeKafka,
					Kafka:   config.KafkaSource{Brokers: cl.ListenAddrs(), Topic: topic},
					Mapping: &config.SourceMapping{Source: "web", Type: "$.kind", Subject: "$.user"}},
				Pattern: json.RawMessage(`{"type":["click"]}`),
				Target: config.Target{Type: config.TypeClickHouse,
					Batch:      config.Batch{MaxRows: c.rows, MaxInFlight: c.inFlight},
					ClickHouse: config.ClickHouse{DSN: dsn, DataType: c.dataType}},
			}}}
			cfg.ApplyDefaults()
			dlq := &nopDLQ{}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			repo, _ := filepath.Abs("../..")
			var srv0 time.Duration = -1
			if os.Getenv("CLICKHOUSE_ADDR") == "" {
				srv0 = serverCPU(repo)
			}
			load0, cpu0 := loadAvg(), selfCPU()
			stopProfile := profile(b, c.dataType)
			b.ResetTimer()
			t0 := time.Now()
			p, err := pipes.Start(context.Background(), pipes.Options{Pipe: cfg.Pipes[0], DeadLetters: dlq, Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			for {
				st := p.Stats()
				if st.Delivered+st.Skipped >= int64(n) {
					break
				}
				if time.Since(t0) > 30*time.Minute {
					b.Fatalf("not done after 30 minutes: %+v", st)
				}
				time.Sleep(5 * time.Millisecond)
			}
			el := time.Since(t0)
			b.StopTimer()
			stopProfile()
			cpu := selfCPU() - cpu0
			srv := time.Duration(-1)
			if srv0 >= 0 {
				srv = serverCPU(repo) - srv0
			}
			st := p.Stats()
			p.Close()
			if got := chtest.Count(b, chtest.Conn(b, dsn), "SELECT uniqExact(id) FROM "+db+".events"); got != uint64(want) || dlq.n != 0 {
				b.Fatalf("uniqExact(id) = %d, want %d; %d dead letters; stats %+v", got, want, dlq.n, st)
			}
			b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			b.ReportMetric(float64(want)/el.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "proc-cpu-µs/record")
			if srv >= 0 {
				b.ReportMetric(float64(srv.Microseconds())/float64(want), "server-cpu-µs/row")
			}
			b.Logf("%d records, %d rows in %v; load average %s → %s; peak RSS %d MiB", n, want, el.Round(time.Millisecond), load0, loadAvg(), maxRSS())
		})
	}
}

// profile writes a CPU profile of the measured part of a run of at least
// 100,000 records to $PIPE_CPUPROFILE-<data type>, when that is set.
func profile(b *testing.B, name string) func() {
	path := os.Getenv("PIPE_CPUPROFILE")
	if path == "" || b.N < 100_000 {
		return func() {}
	}
	f, err := os.Create(path + "-" + name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// produce writes n records round-robin over the partitions and returns how
// many are clicks.
func produce(b *testing.B, c *kfake.Cluster, n int) int {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	clicks := 0
	const per = 20_000
	for start := 0; start < n; start += per {
		recs := make([]*kgo.Record, 0, per)
		for i := start; i < min(start+per, n); i++ {
			if keep(i) {
				clicks++
			}
			recs = append(recs, &kgo.Record{Value: record(i)})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return clicks
}
