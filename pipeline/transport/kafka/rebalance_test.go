package kafka

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/busbar/busbar/pipeline/transport"
)

// TestRebalanceNoLoss: subscribers of one group join and leave while 4,000
// messages on 4 partitions are consumed with MaxInFlight 8, handlers that
// take a random while, ack out of order and sometimes nack. Every message is
// received and acked at least once, and the group's committed offsets end
// at the end of every partition. (Rebalances are where Redpanda Connect
// once lost messages: committing a revoked partition's offsets past
// unacked records, or acks from an earlier assignment moving a later one.)
func TestRebalanceNoLoss(t *testing.T) {
	c := cluster(t)
	tr := open(t, c, SchemeFranz, "partitions=4")
	const topic, group, n = "busbar.q.rebalance", "g", 4000
	if err := tr.CreateTopic(context.Background(), topic, transport.TopicOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]int{}
	ackedTotal := 0
	consume := func(ch <-chan *message.Message) {
		for m := range ch {
			go func() {
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				if rand.IntN(50) == 0 {
					m.Nack()
					return
				}
				mu.Lock()
				acked[string(m.Payload)]++
				ackedTotal++
				mu.Unlock()
				m.Ack()
			}()
		}
	}
	opts := transport.SubscribeOptions{MaxInFlight: 8, NackDelay: 5 * time.Millisecond, DrainTimeout: 2 * time.Second}
	subscribe := func() message.Subscriber {
		sub, err := tr.Subscriber(group, opts)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		go consume(ch)
		return sub
	}
	progress := func(at int) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= at {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d distinct messages acked", got, at)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	a := subscribe()
	b := subscribe()
	go func() {
		for i := 0; i < n; i += 100 {
			if err := tr.Publisher().Publish(topic, newMsgs(100, "m"+string(rune('A'+i/100)))...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	progress(n / 4)
	c3 := subscribe() // a third member joins: partitions move
	progress(n / 2)
	if err := a.Close(); err != nil { // a member leaves gracefully
		t.Fatal(err)
	}
	progress(3 * n / 4)
	d := subscribe() // another joins while b and c3 work
	progress(n)
	for _, s := range []message.Subscriber{b, c3, d} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	t.Logf("%d messages, %d acks: %d duplicates", len(acked), ackedTotal, ackedTotal-len(acked))
	mu.Unlock()

	adm := kadm.NewClient(tr.admin)
	ctx := context.Background()
	offs, err := adm.FetchOffsets(ctx, tr.GroupID(group, topic))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, tr.KafkaTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		got, _ := offs.Lookup(e.Topic, e.Partition)
		if got.At != e.Offset {
			t.Errorf("partition %d: committed %d, end %d", e.Partition, got.At, e.Offset)
		}
	})
}
