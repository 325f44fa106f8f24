package routers_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/pipeline"
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
	if n, err := dl.Count(ctx, routers.QueueRef{Bus: "x", Rule: "y", Target: "z"}); err != nil || n != 0 {
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
	if n, _ := dl.Count(ctx, q); n != 3 {
		t.Fatalf("count = %d", n)
	}
	recs, next, err := dl.List(ctx, q, 0, 2)
	if err != nil || len(recs) != 2 || next != 3 {
		t.Fatalf("list = %+v next %d, %v", recs, next, err)
	}
	if r := recs[0]; r.EventID != "e0" || r.Status != 400 || r.Attempts != 1 || r.Reason != routers.ReasonPermanent || r.Event != nil {
		t.Errorf("record = %+v", r)
	}
	one, err := dl.Show(ctx, q, 2)
	if err != nil || one.EventID != "e1" || len(one.Event) == 0 {
		t.Fatalf("show = %+v, %v", one, err)
	}
	if _, err := dl.Show(ctx, q, 99); !errors.Is(err, transport.ErrNotFound) {
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
