package natsjs

import (
	"context"
	"errors"
	"testing"

	"github.com/busbar/busbar/pipeline/transport"
)

func TestInspector(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	ctx := context.Background()
	const topic = "busbar.dlq.b.r.t"
	if _, err := tr.TopicStats(ctx, topic); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("undeclared topic: %v", err)
	}
	if err := tr.CreateTopic(ctx, topic, transport.TopicOptions{}); err != nil {
		t.Fatal(err)
	}
	// An empty stream reports its range as 0..0: browsing it is an empty
	// page, not a request for message 0.
	if page, err := tr.Browse(ctx, topic, 0, 10); err != nil || len(page) != 0 {
		t.Fatalf("browse of an empty topic: %+v, %v", page, err)
	}
	msgs := newMsgs(5, "dead")
	msgs[2].Metadata.Set("busbar-error", "POST http://x: 400 Bad Request")
	if err := tr.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
	st, err := tr.TopicStats(ctx, topic)
	if err != nil || st.Messages != 5 || st.FirstSeq != 1 || st.LastSeq != 5 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	got, err := tr.Get(ctx, topic, 3)
	if err != nil || got.Message.UUID != msgs[2].UUID || string(got.Message.Payload) != "dead-2" ||
		got.Message.Metadata.Get("busbar-error") != "POST http://x: 400 Bad Request" || got.Time.IsZero() {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if err := tr.Delete(ctx, topic, 2); err != nil {
		t.Fatal(err)
	}
	if err := tr.Delete(ctx, topic, 2); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := tr.Get(ctx, topic, 2); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	page, err := tr.Browse(ctx, topic, 1, 3)
	if err != nil || len(page) != 3 || page[0].Seq != 1 || page[1].Seq != 3 || page[2].Seq != 4 {
		t.Fatalf("browse skips deleted: %+v, %v", page, err)
	}
	page, err = tr.Browse(ctx, topic, 5, 10)
	if err != nil || len(page) != 1 || page[0].Seq != 5 {
		t.Fatalf("browse tail: %+v, %v", page, err)
	}
}
