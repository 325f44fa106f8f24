package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/sinks"
)

// readAll reads n records of topic from the start with franz-go.
func readAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// TestSinkBinaryKeysPartitions: 200 events delivered concurrently in binary
// mode land on a 4-partition topic with ce_ headers, the data as the value,
// the configured key, and one partition per key.
func TestSinkBinaryKeysPartitions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(4, "orders.erp"), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := New(Options{Conn: kclient.Conn{Brokers: c.ListenAddrs()}, Topic: "orders.{$.source}", Key: "$.data.customer"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := fmt.Sprintf(`{"specversion":"1.0","id":"e-%d","source":"erp","type":"order.created","subject":"SO-%d","time":"2026-01-02T03:04:05Z","tenant":"acme","datacontenttype":"application/json","data":{"customer":"C-%d","n":%d}}`, i, i, i%7, i)
			errs <- s.Deliver(context.Background(), sinks.Delivery{EventID: fmt.Sprint(i), Event: []byte(ev)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	recs := readAll(t, c.ListenAddrs(), "orders.erp", n)
	partOf := map[string]int32{}
	parts := map[int32]bool{}
	for _, r := range recs {
		h := headers(r)
		var data struct {
			Customer string
			N        int
		}
		if err := json.Unmarshal(r.Value, &data); err != nil {
			t.Fatalf("value is not the data: %q", r.Value)
		}
		if h["ce_id"] != fmt.Sprintf("e-%d", data.N) || h["ce_source"] != "erp" || h["ce_type"] != "order.created" || h["ce_specversion"] != "1.0" ||
			h["ce_subject"] != fmt.Sprintf("SO-%d", data.N) || h["ce_tenant"] != "acme" || h["content-type"] != "application/json" || h["ce_time"] != "2026-01-02T03:04:05Z" {
			t.Fatalf("headers of %q: %v", r.Value, h)
		}
		if string(r.Key) != data.Customer {
			t.Fatalf("key %q, want %q", r.Key, data.Customer)
		}
		if p, ok := partOf[data.Customer]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", data.Customer, p, r.Partition)
		}
		partOf[data.Customer] = r.Partition
		parts[r.Partition] = true
	}
	if len(parts) < 2 {
		t.Errorf("7 keys all landed in %d partition(s); the key does not pick the partition", len(parts))
	}
}

// TestSinkStructuredAndErrors: structured mode sends the event JSON; an
// event whose topic template finds nothing fails permanently.
func TestSinkStructuredAndErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tgt := config.Target{ID: "k", Type: config.TypeKafka, Kafka: config.KafkaTarget{Brokers: c.ListenAddrs(), Topic: "audit.{$.data.region}", Mode: config.KafkaModeStruct}}
	snk, err := sinks.New(tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer snk.Close()
	ev := `{"specversion":"1.0","id":"x1","source":"crm","type":"t","partitionkey":"P-1","data":{"region":"eu"}}`
	if err := snk.Deliver(context.Background(), sinks.Delivery{Event: []byte(ev)}); err != nil {
		t.Fatal(err)
	}
	r := readAll(t, c.ListenAddrs(), "audit.eu", 1)[0]
	if string(r.Value) != ev || headers(r)["content-type"] != "application/cloudevents+json; charset=UTF-8" || string(r.Key) != "P-1" {
		t.Errorf("structured record: key %q value %s headers %v", r.Key, r.Value, headers(r))
	}
	err = snk.Deliver(context.Background(), sinks.Delivery{Event: []byte(`{"specversion":"1.0","id":"x2","source":"crm","type":"t","data":{}}`)})
	if err == nil || !sinks.IsPermanent(err) {
		t.Errorf("missing topic value: got %v, want a permanent error", err)
	}
}
