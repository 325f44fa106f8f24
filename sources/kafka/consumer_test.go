package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// produce writes n records with values "<prefix>-<i>" spread over the
// topic's partitions.
func produce(t *testing.T, conn kclient.Conn, topic, prefix string, n int) {
	t.Helper()
	opts, _ := conn.Opts(nil)
	prod, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed returns the group's committed offset and the log end, per
// partition.
func committed(t *testing.T, conn kclient.Conn, group, topic string) (got, end map[int32]int64) {
	t.Helper()
	opts, _ := conn.Opts(nil)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	got, end = map[int32]int64{}, map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		end[e.Partition] = e.Offset
		if o, ok := offs.Lookup(topic, e.Partition); ok {
			got[e.Partition] = o.At
		} else {
			got[e.Partition] = -1
		}
	})
	return got, end
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerCommitsSettledPrefix: records are settled out of order, from
// other goroutines, several polls at once; one record is held back: its
// partition's commit stops right before it while the other partitions
// commit to their end, and moves to the end once it is settled.
func TestConsumerCommitsSettledPrefix(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := kclient.Conn{Brokers: c.ListenAddrs()}
	const n = 3000
	produce(t, conn, "in", "r", n)

	var mu sync.Mutex
	seen := map[string]int{}
	var held *Chunk
	var heldOffset int64
	release := make(chan struct{})
	cons, err := StartConsumer(ConsumerOptions{
		Name: "t", Conn: conn, Topic: "in", Group: "g", Logger: quietLogger(),
		MaxPoll: 100, MaxUnsettled: 500, CommitInterval: 50 * time.Millisecond, SessionTimeout: 6 * time.Second,
	}, func(chunks []*Chunk) {
		for _, ch := range chunks {
			mu.Lock()
			for _, r := range ch.Records {
				seen[string(r.Value)]++
			}
			hold := held == nil && ch.Partition == 1 && len(ch.Records) > 1 && ch.Records[0].Offset > 0
			if hold {
				held, heldOffset = ch, ch.Records[len(ch.Records)-1].Offset
			}
			mu.Unlock()
			go func() {
				time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
				if !hold {
					// Settle in two parts, out of order with other chunks.
					ch.Settle(1)
					ch.Settle(len(ch.Records) - 1)
					return
				}
				ch.Settle(len(ch.Records) - 1)
				<-release
				ch.Settle(1)
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	waitUntil(t, 30*time.Second, "every record to be handed out", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n, fmt.Sprint(len(seen), " handed out")
	})
	waitUntil(t, 10*time.Second, "the other partitions to commit to their end", func() (bool, string) {
		got, end := committed(t, conn, "g", "in")
		return got[0] == end[0] && got[2] == end[2] && got[1] >= 0, fmt.Sprint(got, end)
	})
	time.Sleep(200 * time.Millisecond) // several commit intervals
	got, end := committed(t, conn, "g", "in")
	mu.Lock()
	first := held.Records[0].Offset
	mu.Unlock()
	if got[1] > first || got[1] == end[1] {
		t.Fatalf("partition 1 committed %d past a chunk not settled (offsets %d–%d, end %d)", got[1], first, heldOffset, end[1])
	}
	if cons.Unsettled() == 0 {
		t.Fatal("Unsettled is 0 with a record held back")
	}
	close(release)
	waitUntil(t, 10*time.Second, "partition 1 to commit to its end", func() (bool, string) {
		got, end := committed(t, conn, "g", "in")
		return got[1] == end[1], fmt.Sprint(got, end)
	})
	for v, k := range seen {
		if k != 1 {
			t.Errorf("record %s handed out %d times without a rebalance", v, k)
		}
	}
}

// TestConsumerRebalance: a second member joins mid-stream and the first
// leaves; every record is settled by someone, commits end at the log end,
// and nothing settled under an old assignment moves a later commit.
func TestConsumerRebalance(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := kclient.Conn{Brokers: c.ListenAddrs()}
	const n = 4000
	produce(t, conn, "in", "a", n/2)

	var mu sync.Mutex
	seen := map[string]int{}
	byMember := map[string]int{}
	handler := func(member string) Handler {
		return func(chunks []*Chunk) {
			mu.Lock()
			for _, ch := range chunks {
				for _, r := range ch.Records {
					seen[string(r.Value)]++
				}
				byMember[member] += len(ch.Records)
			}
			mu.Unlock()
			for _, ch := range chunks {
				go func() {
					time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
					ch.Settle(len(ch.Records))
				}()
			}
		}
	}
	count := func() (int, map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen), maps.Clone(byMember)
	}
	owns := func(c *Consumer) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.parts)
	}
	opts := ConsumerOptions{Name: "t", Conn: conn, Topic: "in", Group: "g", Logger: quietLogger(), Start: config.KafkaStartOldest,
		MaxPoll: 20, MaxUnsettled: 40, CommitInterval: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, DrainTimeout: 2 * time.Second}
	a, err := StartConsumer(opts, handler("a"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "a to be under way", func() (bool, string) {
		k, _ := count()
		return k > 200, fmt.Sprint(k)
	})
	b, err := StartConsumer(opts, handler("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produce(t, conn, "in", "b", n/2)
	waitUntil(t, 30*time.Second, "both members to own partitions and b to get records", func() (bool, string) {
		k, m := count()
		return owns(a) > 0 && owns(b) > 0 && m["b"] > 0, fmt.Sprint(k, " seen, by member ", m, "; partitions a ", owns(a), " b ", owns(b))
	})
	if k, _ := count(); k == n {
		t.Fatal("every record was handed out before the second member joined; the test proves nothing")
	}
	a.Close()
	waitUntil(t, 60*time.Second, "every record to be handed out and committed", func() (bool, string) {
		k, _ := count()
		got, end := committed(t, conn, "g", "in")
		for p, e := range end {
			if got[p] != e {
				return false, fmt.Sprint(k, " seen; committed ", got, " end ", end)
			}
		}
		return k == n, fmt.Sprint(k, " seen")
	})
	_, m := count()
	t.Logf("handed out per member: %v", m)
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	t.Logf("%d records, %d handed out again after the rebalances", n, dups)
}
