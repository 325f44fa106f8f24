package main

// End-to-end test of a pipe: a Kafka topic (kfake, in this process, so it
// outlives the busbar subprocess that is killed) straight into ClickHouse
// (the test server of make test, through chtest).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/sinks/clickhouse/chtest"
)

// pipeRecords is how many records TestPipeKafkaToClickHouse produces:
// 200,000 by default (1,000,000 runs in bench/pipe; with -race on two
// shared cores the full million would take most of make test's budget).
// BUSBAR_PIPE_RECORDS changes it.
func pipeRecords(t *testing.T) int {
	n := 200_000
	if s := os.Getenv("BUSBAR_PIPE_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			t.Fatalf("BUSBAR_PIPE_RECORDS=%q: want a number ≥ 1000", s)
		}
		n = v
	}
	return n
}

// keep reports whether record i is a click (kept by the pipe's pattern):
// about half of them, in no regular order.
func keep(i int) bool { return (uint32(i)*2654435761)>>16&1 == 0 }

// TestPipeKafkaToClickHouse: small JSON records on a 6-partition topic go
// through a pipe whose pattern keeps the clicks (~50%) into the ClickHouse
// events table, run by two busbar workers sharing the topic through the
// pipe's consumer group. One worker is killed with SIGKILL mid-way (the
// other takes its partitions over and finishes the topic), then restarted,
// and 10% more records arrive for both. In the end the table holds every
// click exactly once after deduplication by id (uniqExact(id), and count()
// FROM events FINAL), no other record, and the group's offsets are at the
// log end.
func TestPipeKafkaToClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: pipe test moves 200,000 records through Kafka and ClickHouse")
	}
	dsn, db := chtest.Database(t)
	conn := chtest.Conn(t, dsn)
	// The workers write over HTTP: the dev server (chdb) aborts when a
	// native-protocol client vanishes mid-connection, as a SIGKILLed worker
	// does, and would take every other test down with it. (A real server
	// does not; bench/pipe measures the native protocol.)
	httpDSN := "http://" + chtest.HTTPAddr(t) + "/" + db
	n := pipeRecords(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "web.clicks"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t0 := time.Now()
	want := produceClicks(t, c, 0, n)
	t.Logf("produced %d records (%d clicks) in %v", n, want, time.Since(t0).Round(time.Millisecond))

	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`
pipes:
  - name: clicks
    source:
      type: kafka
      kafka:
        brokers: [%s]
        topic: web.clicks
        session_timeout: 6s
      mapping:
        source: web
        type: $.kind
        subject: $.user
    pattern:
      type: [click]
    target:
      type: clickhouse
      batch: {max_rows: 20000, max_wait: 200ms, max_in_flight: 2}
      clickhouse:
        dsn: %s
`, c.ListenAddrs()[0], httpDSN))
	dataA, dataB := filepath.Join(dir, "a"), filepath.Join(dir, "b")

	uniq := func() uint64 { return chtest.Count(t, conn, "SELECT uniqExact(id) FROM "+db+".events") }
	t1 := time.Now()
	proc, exited := startSubprocess(t, cfg, dataA, freePort(t))
	startSubprocess(t, cfg, dataB, freePort(t))
	waitShared(t, c, "busbar.pipe.clicks")
	waitFor(t, 5*time.Minute, "a third of the clicks in ClickHouse", func() (bool, string) {
		if chtest.Count(t, conn, "SELECT count() FROM system.tables WHERE database = ? AND name = 'events'", db) == 0 {
			return false, "no events table yet"
		}
		got := uniq()
		return got >= uint64(want/3), fmt.Sprint(got, " of ", want)
	})
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	before := uniq()
	_, status := groupAtEnd(t, c, "busbar.pipe.clicks", "web.clicks")
	t.Logf("killed worker A with SIGKILL after %v with %d of %d clicks stored; offsets then: %s", time.Since(t1).Round(time.Millisecond), before, want, status)
	if before >= uint64(want) {
		t.Fatal("every click was stored before the kill; the test proves nothing")
	}

	t2 := time.Now()
	allStored := func(want int) func() (bool, string) {
		return func() (bool, string) {
			got := uniq()
			if got < uint64(want) {
				return false, fmt.Sprint(got, " of ", want)
			}
			return groupAtEnd(t, c, "busbar.pipe.clicks", "web.clicks")
		}
	}
	waitFor(t, 5*time.Minute, "worker B alone to store every click and commit to the log end", allStored(want))
	rows := chtest.Count(t, conn, "SELECT count() FROM "+db+".events")
	t.Logf("worker B took over and finished %v after the kill: %d clicks, %d rows (count() − uniqExact(id): %d duplicates not yet merged away)",
		time.Since(t2).Round(time.Millisecond), want, rows, rows-uint64(want))

	startSubprocess(t, cfg, dataA, freePort(t))
	waitShared(t, c, "busbar.pipe.clicks")
	want += produceClicks(t, c, n, n/10)
	waitFor(t, 5*time.Minute, "the new clicks too", allStored(want))
	t.Logf("worker A restarted and shares the topic again; %d more records stored", n/10)
	n += n / 10

	rows = chtest.Count(t, conn, "SELECT count() FROM "+db+".events")
	final := chtest.Count(t, conn, "SELECT count() FROM "+db+".events FINAL")
	got := uniq()
	others := chtest.Count(t, conn, "SELECT count() FROM "+db+".events WHERE type != 'click' OR source != 'web'")
	badIDs := chtest.Count(t, conn, "SELECT count() FROM "+db+".events WHERE NOT match(id, '^web\\.clicks-[0-5]-[0-9]+$') OR extensions['topic'] != 'web.clicks'")
	t.Logf("%d records, %d clicks: %d rows, %d distinct ids, %d rows FINAL", n, want, rows, got, final)
	if got != uint64(want) || final != uint64(want) {
		t.Errorf("distinct ids %d, rows FINAL %d; want exactly %d", got, final, want)
	}
	if others != 0 || badIDs != 0 {
		t.Errorf("%d rows are not clicks from web, %d have ids or extensions not from their record", others, badIDs)
	}
}

// produceClicks writes records from, from+1, … from+n-1 (small JSON) and
// returns how many are clicks.
func produceClicks(t *testing.T, c *kfake.Cluster, from, n int) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("web.clicks"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	clicks := 0
	const per = 10_000
	for start := from; start < from+n; start += per {
		recs := make([]*kgo.Record, 0, per)
		for i := start; i < min(start+per, from+n); i++ {
			kind := "view"
			if keep(i) {
				kind, clicks = "click", clicks+1
			}
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"kind":%q,"user":"u%d","page":"/p/%d","ms":%d}`, kind, i%5000, i%300, i%1000)})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return clicks
}

// groupAtEnd reports whether group has committed every partition of topic
// to its log end.
func groupAtEnd(t *testing.T, c *kfake.Cluster, group, topic string) (bool, string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err.Error()
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, err.Error()
	}
	ok, status := true, "committed/end:"
	ends.Each(func(e kadm.ListedOffset) {
		got, _ := offs.Lookup(topic, e.Partition)
		ok = ok && got.At == e.Offset
		status += fmt.Sprintf(" %d/%d", got.At, e.Offset)
	})
	return ok, status
}
