package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// bus is an in-memory stand-in for the engine: it records what the source
// publishes and dead-letters, and can refuse publishes.
type bus struct {
	mu     sync.Mutex
	events []map[string]any
	dead   []DeadRecord
	refuse int // refuse this many Publish calls
}

func (b *bus) HasBus(name string) bool { return name == "orders" }

func (b *bus) Publish(_ context.Context, _ string, recs []pipeline.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse > 0 {
		b.refuse--
		return fmt.Errorf("bus unavailable")
	}
	for _, r := range recs {
		var ev map[string]any
		if err := json.Unmarshal(r.Event, &ev); err != nil {
			panic(err)
		}
		b.events = append(b.events, ev)
	}
	return nil
}

func (b *bus) DeadLetter(_ context.Context, _ string, recs []DeadRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dead = append(b.dead, recs...)
	return nil
}

func (b *bus) counts() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events), len(b.dead)
}

func hdr(kv ...string) []kgo.RecordHeader {
	var h []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		h = append(h, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return h
}

// TestSourceMixedRecords: structured CloudEvents, binary CloudEvents, plain
// JSON and garbage on one topic of 2 partitions become the right events on
// the bus; garbage goes to the dead-letter queue with its reason; the bus
// refusing once loses nothing; offsets are committed to the end.
func TestSourceMixedRecords(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(2, "erp.orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := kclient.Conn{Brokers: c.ListenAddrs()}
	opts, _ := conn.Opts(nil)
	prod, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("erp.orders"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	recs := []*kgo.Record{
		// structured, by content type
		{Key: []byte("a"), Value: []byte(`{"specversion":"1.0","id":"s-1","source":"erp","type":"order.created","data":{"n":1}}`), Headers: hdr("content-type", "application/cloudevents+json; charset=utf-8")},
		// structured, recognised by its specversion
		{Key: []byte("a"), Value: []byte(`{"specversion":"1.0","id":"s-2","source":"erp","type":"order.updated","data":{"n":2}}`)},
		// binary
		{Key: []byte("b"), Value: []byte(`{"n":3}`), Headers: hdr("ce_specversion", "1.0", "ce_id", "b-1", "ce_source", "wms", "ce_type", "stock.in", "ce_tenant", "acme", "content-type", "application/json")},
		// plain JSON, mapped
		{Key: []byte("SO-9"), Value: []byte(`{"kind":"order.cancelled","n":4}`)},
		// garbage: not JSON, mapping needs $.kind
		{Key: []byte("c"), Value: []byte("\x00\x01not json")},
		// garbage: structured content type, broken JSON
		{Key: []byte("c"), Value: []byte(`{"specversion":`), Headers: hdr("content-type", "application/cloudevents+json")},
		// garbage: binary without a type
		{Key: []byte("c"), Value: []byte(`{}`), Headers: hdr("ce_specversion", "1.0", "ce_id", "x", "ce_source", "wms")},
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	b := &bus{refuse: 1}
	src, err := Start(Options{
		Name: "erp", Bus: "orders", Conn: conn, Topic: "erp.orders", Group: "busbar.source.erp",
		Mapping:   &config.SourceMapping{Source: "erp.legacy", Type: "$.kind"},
		Publisher: b, DeadLetters: b, SessionTimeout: 6 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev, dl := b.counts()
		if ev >= 4 && dl >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events and %d dead letters, want 4 and 3", ev, dl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	src.Close()

	byID := map[string]map[string]any{}
	for _, ev := range b.events {
		byID[ev["id"].(string)] = ev
	}
	if len(b.events) != 4 {
		// duplicates are allowed only after a refused publish of a batch
		// that was partly published, which the fake never does
		t.Errorf("got %d events, want 4: %v", len(b.events), b.events)
	}
	if ev := byID["s-1"]; ev == nil || ev["type"] != "order.created" || ev["data"].(map[string]any)["n"] != 1.0 {
		t.Errorf("structured event: %v", ev)
	}
	if ev := byID["s-2"]; ev == nil || ev["type"] != "order.updated" {
		t.Errorf("structured event without content type: %v", ev)
	}
	if ev := byID["b-1"]; ev == nil || ev["source"] != "wms" || ev["tenant"] != "acme" || ev["data"].(map[string]any)["n"] != 3.0 {
		t.Errorf("binary event: %v", ev)
	}
	var mapped map[string]any
	for id, ev := range byID {
		if strings.HasPrefix(id, "erp.orders-") {
			mapped = ev
		}
	}
	if mapped == nil || mapped["source"] != "erp.legacy" || mapped["type"] != "order.cancelled" || mapped["subject"] != "SO-9" ||
		mapped["topic"] != "erp.orders" || mapped["offset"] == nil || mapped["partition"] == nil || mapped["data"].(map[string]any)["n"] != 4.0 {
		t.Errorf("mapped event: %v", mapped)
	}
	if _, ok := mapped[pipeline.ExtIngestTime]; !ok {
		t.Errorf("mapped event has no %s", pipeline.ExtIngestTime)
	}
	reasons := []string{}
	for _, d := range b.dead {
		reasons = append(reasons, d.Reason)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"not JSON", "structured CloudEvent", "type"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead-letter reason mentions %q:\n%s", want, all)
		}
	}

	adm := kadm.NewClient(prod)
	offs, err := adm.FetchOffsets(context.Background(), "busbar.source.erp")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(context.Background(), "erp.orders")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		got, _ := offs.Lookup("erp.orders", e.Partition)
		if got.At != e.Offset {
			t.Errorf("partition %d: committed %d, end %d", e.Partition, got.At, e.Offset)
		}
	})
}
