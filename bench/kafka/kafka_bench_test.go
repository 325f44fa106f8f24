package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/engine"
	"github.com/busbar/busbar/pipeline/transport"
	kafkatr "github.com/busbar/busbar/pipeline/transport/kafka"
	_ "github.com/busbar/busbar/sinks/kafka"
)

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func cluster(b *testing.B, partitions int) *kfake.Cluster {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

func open(b *testing.B, c *kfake.Cluster, scheme string) *kafkatr.Transport {
	b.Helper()
	query := ""
	if i := strings.IndexByte(scheme, '?'); i >= 0 {
		scheme, query = scheme[:i], "&"+scheme[i+1:]
	}
	u, _ := url.Parse(fmt.Sprintf("%s://%s?partitions=6&session_timeout=6s%s", scheme, strings.Join(c.ListenAddrs(), ","), query))
	tr, err := kafkatr.OpenTransport(context.Background(), u, transport.Options{Logger: logger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	return tr
}

// 512-byte CloudEvent-sized payload.
var payload = []byte(fmt.Sprintf(`{"specversion":"1.0","id":"x","source":"erp","type":"order.created","data":{"pad":%q}}`, make([]byte, 420)))

func msgs(n int) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = message.NewMessage(watermill.NewULID(), payload)
		out[i].Metadata.Set("busbar-event-id", out[i].UUID)
		out[i].Metadata.Set(kafkatr.MetaPartitionKey, fmt.Sprint("k", i%64))
	}
	return out
}

// publish sends b.N messages from conc goroutines, per messages per
// Publish call, and reports msgs/s.
func publish(b *testing.B, pub message.Publisher, topic string, conc, per int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(int64(per)) - int64(per)
				if i >= int64(b.N) {
					return
				}
				if err := pub.Publish(topic, msgs(min(per, b.N-int(i)))...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
}

// BenchmarkPublish: concurrent publishers (HTTP handlers; a bus router
// hands off up to 256 events at once), one message or a batch of 100 per
// Publish call, each call waiting for acks=all.
func BenchmarkPublish(b *testing.B) {
	for _, scheme := range []string{kafkatr.SchemeFranz, kafkatr.SchemeSarama} {
		for _, c := range []struct{ conc, per int }{{16, 1}, {256, 1}, {16, 100}} {
			b.Run(fmt.Sprintf("%s/publishers=%d/batch=%d", scheme, c.conc, c.per), func(b *testing.B) {
				cl := cluster(b, 6)
				tr := open(b, cl, scheme)
				publish(b, tr.Publisher(), "busbar.bus.bench", c.conc, c.per)
			})
		}
	}
}

// BenchmarkConsume: one subscriber (MaxInFlight 256, as a bus router)
// reads b.N messages published beforehand, acking each at once.
func BenchmarkConsume(b *testing.B) {
	for _, scheme := range []string{kafkatr.SchemeFranz, kafkatr.SchemeSarama} {
		b.Run(scheme, func(b *testing.B) {
			c := cluster(b, 6)
			tr := open(b, c, scheme)
			// Fill with the fast path whatever the scheme under test.
			filler := open(b, c, kafkatr.SchemeFranz)
			for i := 0; i < b.N; i += 1000 {
				if err := filler.Publisher().Publish("busbar.bus.bench", msgs(min(1000, b.N-i))...); err != nil {
					b.Fatal(err)
				}
			}
			sub, err := tr.Subscriber("bench", transport.SubscribeOptions{MaxInFlight: 256, DrainTimeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			b.ResetTimer()
			t0 := time.Now()
			ch, err := sub.Subscribe(context.Background(), "busbar.bus.bench")
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				m := <-ch
				m.Ack()
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkSourceToSink: a whole engine on the Kafka transport reads b.N
// CloudEvents from a Kafka topic (source), routes them through one rule and
// produces them to another topic (kafka target); events/s from the start
// of the engine until the last record is in the output topic.
func BenchmarkSourceToSink(b *testing.B) {
	c := cluster(b, 6)
	brokers := c.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("in"), kgo.AllowAutoTopicCreation())
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	for i := 0; i < b.N; i += 1000 {
		var recs []*kgo.Record
		for j := i; j < min(i+1000, b.N); j++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint("k", j%64)), Value: []byte(fmt.Sprintf(`{"specversion":"1.0","id":"e-%d","source":"erp","type":"order.created","data":{"n":%d,"pad":"%0400d"}}`, j, j, 0))})
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
transport: kafka://%s?partitions=6&session_timeout=6s
sources:
  - name: in
    type: kafka
    kafka: {brokers: [%s], topic: in}
rules:
  - name: all
    targets:
      - id: out
        type: kafka
        concurrency: 1024
        kafka: {brokers: [%s], topic: out, key: $.id}
`, strings.Join(brokers, ","), strings.Join(brokers, ", "), strings.Join(brokers, ", "))), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	b.ResetTimer()
	t0 := time.Now()
	eng, err := engine.Start(context.Background(), cfg, engine.Options{Logger: logger(), DrainTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	got := 0
	for got < b.N {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("%d of %d events arrived", got, b.N)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "events/s")
}
