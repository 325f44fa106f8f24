package transport

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/pipeline/transport"
	_ "github.com/busbar/busbar/pipeline/transport/natsjs"
)

// Run all with:
//
//	go test ./bench/transport -run '^$' -bench . -benchtime 20000x
//
// BenchmarkIdleCPU ignores b.N (it measures 10 s of idling); the fixed-rate
// latency benchmarks publish b.N messages at 5,000 msgs/s.

const benchTopic = "busbar.bus.bench"

func openBench(b *testing.B, query string) transport.Transport {
	b.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tr, err := transport.Open(context.Background(), "embedded://"+query, transport.Options{DataDir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	if err := tr.CreateTopic(context.Background(), benchTopic, transport.TopicOptions{}); err != nil {
		b.Fatal(err)
	}
	return tr
}

func batch(n int, payload []byte) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
		msgs[i].Metadata.Set("ce_type", "order.created")
		msgs[i].Metadata.Set("ce_source", "erp")
	}
	return msgs
}

// 512-byte CloudEvent-sized payload.
var payload = []byte(fmt.Sprintf(`{"specversion":"1.0","id":"x","source":"erp","type":"order.created","data":{"pad":%q}}`, make([]byte, 420)))

// BenchmarkPublish measures throughput with 16 concurrent publishers
// (HTTP handlers), one message or a batch of 10 per Publish call.
func BenchmarkPublish(b *testing.B) {
	for _, c := range []struct {
		name  string
		query string
		size  int
	}{
		{"single", "", 1},
		{"batch10", "", 10},
		{"batch10-sync-always", "?sync=always", 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := openBench(b, c.query)
			pub := tr.Publisher()
			calls := (b.N + c.size - 1) / c.size
			work := make(chan struct{}, calls)
			for i := 0; i < calls; i++ {
				work <- struct{}{}
			}
			close(work)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						if err := pub.Publish(benchTopic, batch(c.size, payload)...); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(calls*c.size)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPublishLatency publishes b.N messages at a fixed 5,000 msgs/s
// (open loop: a slow call does not slow the schedule) and reports the
// p50/p99 duration of a Publish call.
func BenchmarkPublishLatency(b *testing.B) {
	const rate = 5000
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch%d-at-5k", size), func(b *testing.B) {
			tr := openBench(b, "")
			pub := tr.Publisher()
			calls := max(b.N/size, 1)
			interval := time.Duration(size) * time.Second / rate
			lat := make([]time.Duration, calls)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < calls; i++ {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					msgs := batch(size, payload)
					t0 := time.Now()
					if err := pub.Publish(benchTopic, msgs...); err != nil {
						b.Error(err)
					}
					lat[i] = time.Since(t0)
				}(i)
			}
			wg.Wait()
			elapsed := time.Since(start)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(calls*size)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// BenchmarkConsume measures how fast one consumer group drains b.N stored
// messages, acking each (the ack is confirmed by the server before its
// slot is reused), at several MaxInFlight values.
func BenchmarkConsume(b *testing.B) {
	for _, inFlight := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("inflight%d", inFlight), func(b *testing.B) {
			tr := openBench(b, "")
			pub := tr.Publisher()
			for left := b.N; left > 0; left -= 100 {
				if err := pub.Publish(benchTopic, batch(min(left, 100), payload)...); err != nil {
					b.Fatal(err)
				}
			}
			sub, err := tr.Subscriber("bench", transport.SubscribeOptions{MaxInFlight: inFlight})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			ch, err := sub.Subscribe(context.Background(), benchTopic)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				select {
				case m := <-ch:
					m.Ack()
				case <-time.After(30 * time.Second):
					b.Fatalf("consumed %d of %d", i, b.N)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.StopTimer()
			_ = sub.Close()
		})
	}
}

// BenchmarkIdleCPU measures the CPU the whole process uses over 10 s while
// 20 consumer groups wait on an idle topic (b.N is ignored).
func BenchmarkIdleCPU(b *testing.B) {
	tr := openBench(b, "")
	for g := 0; g < 20; g++ {
		sub, err := tr.Subscriber(fmt.Sprintf("group-%d", g), transport.SubscribeOptions{MaxInFlight: 16})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sub.Subscribe(context.Background(), benchTopic); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Close() })
	}
	time.Sleep(time.Second) // let start-up settle
	const window = 10 * time.Second
	b.ResetTimer()
	before := cpuTime()
	time.Sleep(window)
	used := cpuTime() - before
	b.ReportMetric(100*used.Seconds()/window.Seconds(), "cpu%")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
