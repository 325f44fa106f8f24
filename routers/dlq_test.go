package routers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/engine"
	"github.com/busbar/busbar/pipeline/pipes"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/natsjs"
	"github.com/busbar/busbar/routers"
)

func TestDeadLettersListShowRedrive(t *testing.T) {
	ctx := context.Background()
	u, _ := url.Parse("embedded://")
	tr, err := natsjs.Open(ctx, u, transport.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	q := routers.QueueRef{Bus: "retail", Rule: "orders", Target: "finance"}
	dlq, queue := routers.DLQTopic(q.Bus, q.Rule, q.Target), routers.QueueTopic(q.Bus, q.Rule, q.Target)
	for _, topic := range []string{dlq, queue} {
		if err := tr.CreateTopic(ctx, topic, transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := routers.NewDeadLetters(tr)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := dl.Count(ctx, routers.QueueRef{Bus: "x", Rule: "y", Target: "z"}.DLQ()); err != nil || n != 0 {
		t.Fatalf("count of a queue that never failed: %d %v", n, err)
	}

	old := time.Now().Add(-time.Hour).UTC()
	for i, failedAt := range []time.Time{old, old, time.Now().UTC()} {
		m := message.NewMessage(string(rune('a'+i)), []byte(`{"specversion":"1.0","id":"e`+string(rune('0'+i))+`","source":"erp","type":"order.created"}`))
		m.Metadata.Set(pipeline.MetaEventID, "e"+string(rune('0'+i)))
		m.Metadata.Set(pipeline.MetaBus, q.Bus)
		m.Metadata.Set(pipeline.MetaRule, q.Rule)
		m.Metadata.Set(pipeline.MetaTarget, q.Target)
		m.Metadata.Set(pipeline.MetaReason, routers.ReasonPermanent)
		m.Metadata.Set(pipeline.MetaError, "POST http://finance/in: 400 Bad Request: missing amount")
		m.Metadata.Set(pipeline.MetaStatus, "400")
		m.Metadata.Set(pipeline.MetaAttempts, "1")
		m.Metadata.Set(pipeline.MetaFailedAt, failedAt.Format(time.RFC3339Nano))
		if err := tr.Publisher().Publish(dlq, m); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := dl.Count(ctx, q.DLQ()); n != 3 {
		t.Fatalf("count = %d", n)
	}
	recs, next, err := dl.List(ctx, q.DLQ(), 0, 2)
	if err != nil || len(recs) != 2 || next != 3 {
		t.Fatalf("list = %+v next %d, %v", recs, next, err)
	}
	if r := recs[0]; r.EventID != "e0" || r.Status != 400 || r.Attempts != 1 || r.Reason != routers.ReasonPermanent || r.Event != nil {
		t.Errorf("record = %+v", r)
	}
	one, err := dl.Show(ctx, q.DLQ(), 2)
	if err != nil || one.EventID != "e1" || len(one.Event) == 0 || one.FailedAt == "" || one.Metadata != nil {
		t.Fatalf("show = %+v, %v", one, err)
	}
	if _, err := dl.Show(ctx, q.DLQ(), 99); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("show missing: %v", err)
	}

	// dry run: counts the two old records, changes nothing
	window := routers.RedriveOptions{Until: time.Now().Add(-30 * time.Minute), DryRun: true}
	res, err := dl.Redrive(ctx, q, window)
	if err != nil || res.Matched != 2 || res.Redriven != 0 || res.Remaining != 3 {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	window.DryRun = false
	res, err = dl.Redrive(ctx, q, window)
	if err != nil || res.Matched != 2 || res.Redriven != 2 || res.Remaining != 1 {
		t.Fatalf("redrive = %+v, %v", res, err)
	}
	// idempotent: the same redrive again finds nothing
	res, err = dl.Redrive(ctx, q, window)
	if err != nil || res.Redriven != 0 {
		t.Fatalf("second redrive = %+v, %v", res, err)
	}
	insp := tr.(transport.Inspector)
	st, err := insp.TopicStats(ctx, queue)
	if err != nil || st.Messages != 2 {
		t.Fatalf("queue holds %+v, %v", st, err)
	}
	back, _ := insp.Get(ctx, queue, st.FirstSeq)
	md := back.Message.Metadata
	if md.Get(pipeline.MetaEventID) != "e0" || md.Get(pipeline.MetaError) != "" || md.Get(routers.MetaRedrivenAt) == "" || md.Get(pipeline.MetaRule) != "orders" {
		t.Errorf("redriven message metadata = %v", md)
	}
}

func openEmbedded(t *testing.T) transport.Transport {
	t.Helper()
	u, _ := url.Parse("embedded://")
	tr, err := natsjs.Open(context.Background(), u, transport.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestDLQTopicsMatchTheirWriters(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{routers.QueueRef{Bus: "b", Rule: "r", Target: "t"}.DLQ().Topic(), routers.DLQTopic("b", "r", "t")},
		{routers.BusDLQ("retail").Topic(), routers.BusDLQTopic("retail")},
		{routers.PipeDLQ("clicks").Topic(), pipes.DLQTopic("clicks")},
		{routers.SourceDLQ("erp").Topic(), engine.SourceDLQTopic("erp")},
	} {
		if c.got != c.want {
			t.Errorf("topic %q, written to %q", c.got, c.want)
		}
	}
	if err := (routers.QueueRef{Bus: "b", Rule: "r", Target: "t"}).DLQ().Redrivable(); err != nil {
		t.Errorf("a target's queue is redrivable: %v", err)
	}
	for _, q := range []routers.DLQ{routers.BusDLQ("retail"), routers.PipeDLQ("clicks"), routers.SourceDLQ("erp")} {
		err := q.Redrivable()
		if !errors.Is(err, routers.ErrNotRedrivable) || !strings.Contains(err.Error(), q.Name()) || !strings.Contains(err.Error(), "show") {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestDLQsOfBusesPipesSources reads the three other kinds of queue:
// a bus's (filled by its real router), a pipe's and a source's (records
// shaped as pipeline/pipes and pipeline/engine write them).
func TestDLQsOfBusesPipesSources(t *testing.T) {
	ctx := context.Background()
	tr := openEmbedded(t)
	for _, q := range []routers.DLQ{routers.BusDLQ("retail"), routers.PipeDLQ("clicks"), routers.SourceDLQ("erp")} {
		if err := tr.CreateTopic(ctx, q.Topic(), transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := routers.NewDeadLetters(tr)
	if err != nil {
		t.Fatal(err)
	}

	// bus: the router parks what it cannot read
	tbl, err := routers.NewTable("retail", []routers.RuleTargets{{Rule: "orders", Pattern: []byte(`{"source":["erp"]}`), Targets: []string{"finance"}}})
	if err != nil {
		t.Fatal(err)
	}
	br := routers.NewBusRouter("retail", tbl, tr.Publisher(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := 0; i < 3; i++ {
		m := message.NewMessage(fmt.Sprint(i), []byte(fmt.Sprintf("not json %d", i)))
		m.Metadata.Set(pipeline.MetaEventID, fmt.Sprint("bad-", i))
		m.Metadata.Set(pipeline.MetaBus, "retail")
		if err := br.Handle(m); err != nil {
			t.Fatal(err)
		}
	}
	bus := routers.BusDLQ("retail")
	if n, err := dl.Count(ctx, bus); err != nil || n != 3 {
		t.Fatalf("bus count = %d, %v", n, err)
	}
	recs, next, err := dl.List(ctx, bus, 0, 2)
	if err != nil || len(recs) != 2 || next != 3 || recs[0].Reason != routers.ReasonUnroutable || recs[0].EventID != "bad-0" || recs[0].Bus != "retail" {
		t.Fatalf("bus list = %+v next %d, %v", recs, next, err)
	}
	recs, next, err = dl.List(ctx, bus, next, 2)
	if err != nil || len(recs) != 1 || next != 0 || recs[0].EventID != "bad-2" {
		t.Fatalf("bus list, second page = %+v next %d, %v", recs, next, err)
	}
	one, err := dl.Show(ctx, bus, 2)
	if err != nil || string(one.Event) != `"not json 1"` || one.Error == "" || one.Reason != routers.ReasonUnroutable {
		t.Fatalf("bus show = %+v (event %s), %v", one, one.Event, err)
	}

	// pipe: a record its target refused, as pipeline/pipes stores it
	pipe := routers.PipeDLQ("clicks")
	for i := 0; i < 2; i++ {
		m := message.NewMessage(fmt.Sprint("p", i), []byte(fmt.Sprintf(`{"specversion":"1.0","id":"c%d","source":"web","type":"click"}`, i)))
		m.Metadata.Set(pipeline.MetaEventID, fmt.Sprint("c", i))
		m.Metadata.Set(pipeline.MetaReason, routers.ReasonExhausted)
		m.Metadata.Set(pipeline.MetaError, "clickhouse: connection refused")
		m.Metadata.Set(pipeline.MetaAttempts, "5")
		m.Metadata.Set(pipeline.MetaFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
		m.Metadata.Set("busbar-pipe", "clicks")
		m.Metadata.Set("kafka-topic", "web.clicks")
		m.Metadata.Set("kafka-partition", "3")
		m.Metadata.Set("kafka-offset", fmt.Sprint(1040+i))
		m.Metadata.Set("kafka-key", "user-7")
		if err := tr.Publisher().Publish(pipe.Topic(), m); err != nil {
			t.Fatal(err)
		}
	}
	recs, next, err = dl.List(ctx, pipe, 0, 1)
	if err != nil || len(recs) != 1 || next != 2 {
		t.Fatalf("pipe list = %+v next %d, %v", recs, next, err)
	}
	if r := recs[0]; r.Pipe != "clicks" || r.Attempts != 5 || r.Origin != "kafka web.clicks[3]@1040" || r.Event != nil || r.Metadata != nil {
		t.Errorf("pipe record = %+v", r)
	}
	one, err = dl.Show(ctx, pipe, 2)
	if err != nil || one.EventID != "c1" || !strings.Contains(string(one.Event), `"id":"c1"`) || one.Metadata["kafka-key"] != "user-7" || one.Metadata["kafka-offset"] != "1041" {
		t.Fatalf("pipe show = %+v, %v", one, err)
	}
	if _, ok := one.Metadata["busbar-pipe"]; ok {
		t.Errorf("a fielded entry is repeated in metadata: %v", one.Metadata)
	}

	// source: a record that is not an event, not even text
	src := routers.SourceDLQ("erp")
	m := message.NewMessage("s0", []byte{0xff, 0xfe, 0x00, 0x01})
	m.Metadata.Set(pipeline.MetaReason, "invalid-record")
	m.Metadata.Set(pipeline.MetaError, "not a CloudEvent: invalid character")
	m.Metadata.Set("busbar-source", "erp")
	m.Metadata.Set("pulsar-topic", "persistent://public/default/erp")
	m.Metadata.Set("pulsar-message-id", "12:3:0")
	m.Metadata.Set("pulsar-property-tenant", "acme")
	if err := tr.Publisher().Publish(src.Topic(), m); err != nil {
		t.Fatal(err)
	}
	recs, _, err = dl.List(ctx, src, 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Source != "erp" || recs[0].Reason != "invalid-record" || recs[0].Origin != "pulsar persistent://public/default/erp 12:3:0" {
		t.Fatalf("source list = %+v, %v", recs, err)
	}
	one, err = dl.Show(ctx, src, recs[0].Seq)
	if err != nil || one.Event != nil || one.EventBase64 != "//4AAQ==" || one.Metadata["pulsar-property-tenant"] != "acme" {
		t.Fatalf("source show = %+v, %v", one, err)
	}

	for _, q := range []routers.DLQ{bus, pipe, src} {
		if ok, err := dl.Exists(ctx, q); !ok || err != nil {
			t.Errorf("%s exists: %v %v", q, ok, err)
		}
	}
	if ok, err := dl.Exists(ctx, routers.PipeDLQ("nope")); ok || err != nil {
		t.Errorf("a pipe never started exists: %v %v", ok, err)
	}

	// queues created at start that never held a record read as empty
	idle := routers.QueueRef{Bus: "retail", Rule: "orders", Target: "idle"}
	for _, topic := range []string{routers.PipeDLQ("idle").Topic(), idle.DLQ().Topic(), routers.QueueTopic(idle.Bus, idle.Rule, idle.Target)} {
		if err := tr.CreateTopic(ctx, topic, transport.TopicOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if recs, next, err := dl.List(ctx, routers.PipeDLQ("idle"), 0, 10); err != nil || len(recs) != 0 || next != 0 {
		t.Errorf("list of an empty queue: %v %d %v", recs, next, err)
	}
	if recs, _, err := dl.List(ctx, pipe, 99, 10); err != nil || len(recs) != 0 {
		t.Errorf("list past the end: %v %v", recs, err)
	}
	if res, err := dl.Redrive(ctx, idle, routers.RedriveOptions{}); err != nil || res != (routers.RedriveResult{}) {
		t.Errorf("redrive of an empty queue: %+v %v", res, err)
	}
}
