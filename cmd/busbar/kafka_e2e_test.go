package main

// End-to-end tests of busbar on the Kafka transport, against kfake (the
// Kafka protocol served by franz-go's emulator on loopback TCP, in this
// process, so it outlives busbar subprocesses that are killed).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// e2eTransports are the transports the event-path tests run on.
var e2eTransports = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"embedded", func(*testing.T) string { return "embedded://" }},
	{"kafka", func(t *testing.T) string { return kafkaURL(t, newKafka(t, 1), "partitions=3") }},
}

// newKafka starts a 3-broker kfake cluster for the test, with automatic
// topic creation and partitions partitions per created topic.
func newKafka(t *testing.T, partitions int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// kafkaURL is the transport URL of c with extra query options.
func kafkaURL(_ *testing.T, c *kfake.Cluster, query string) string {
	u := "kafka://" + strings.Join(c.ListenAddrs(), ",") + "?session_timeout=6s&commit_interval=200ms"
	if query != "" {
		u += "&" + query
	}
	return u
}

// groupMembers returns, per member of a Kafka consumer group, how many
// partitions it is assigned.
func groupMembers(t *testing.T, c *kfake.Cluster, group string) []int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return nil
	}
	var out []int
	for _, m := range groups[group].Members {
		n := 0
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range a.Topics {
				n += len(tp.Partitions)
			}
		}
		out = append(out, n)
	}
	return out
}

// waitShared waits until every group has two members that each own
// partitions: both workers take part.
func waitShared(t *testing.T, c *kfake.Cluster, groups ...string) {
	t.Helper()
	for _, g := range groups {
		waitFor(t, 60*time.Second, "both workers to own partitions of "+g, func() (bool, string) {
			m := groupMembers(t, c, g)
			return len(m) == 2 && m[0] > 0 && m[1] > 0, fmt.Sprint("partitions per member: ", m)
		})
	}
}

// TestKafkaScaleOut: two busbar workers share a Kafka transport (6
// partitions). 50,000 events; one worker is killed with SIGKILL mid-way;
// the other takes over its partitions and every event reaches the target.
// Then the killed worker restarts, the partitions are shared again, and
// 5,000 more events arrive too. Duplicates are counted and reported.
func TestKafkaScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: scale-out test publishes 55,000 events through two busbar processes")
	}
	c := newKafka(t, 6)
	s := newSink()
	targetURL, _ := listen(t, s)
	dir := t.TempDir()
	// The events all have source "erp": key them by id so they spread over
	// the 6 partitions.
	cfg := writeConfig(t, dir, fmt.Sprintf(`
transport: %q
buses:
  - name: default
    partition_key: $.id
rules:
  - name: all
    targets:
      - id: sink
        type: http
        url: %q
        concurrency: 64
        retry: {max_attempts: 1000, initial_interval: 10ms, max_interval: 200ms}
`, kafkaURL(t, c, "partitions=6"), targetURL+"/in"))
	addrA, addrB := freePort(t), freePort(t)
	procA, exitedA := startSubprocess(t, cfg, filepath.Join(dir, "a"), addrA)
	startSubprocess(t, cfg, filepath.Join(dir, "b"), addrB)
	groups := []string{"busbar.router.bus.default", "busbar.dispatch.q.default.all.sink"}
	waitShared(t, c, groups...)

	// Publish through B (which survives) while both workers route and
	// deliver; kill A once a third has been delivered.
	const n = 50000
	t0 := time.Now()
	published := make(chan error, 1)
	var ids []string
	go func() {
		var err error
		ids, err = postBatches("http://"+addrB, n, 500, "ev")
		published <- err
	}()
	waitFor(t, 180*time.Second, "a third of the events to be delivered", func() (bool, string) {
		_, _, got := s.snapshot()
		return got >= n/3, fmt.Sprint(got, " delivered")
	})
	if err := procA.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exitedA
	_, _, before := s.snapshot()
	t.Logf("killed worker A with SIGKILL after %d deliveries", before)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d events through worker B in %v", n, time.Since(t0).Round(time.Millisecond))
	if before >= n {
		t.Fatalf("everything was delivered before the kill; the test proves nothing")
	}
	reportDelivery(t, s, ids)

	startSubprocess(t, cfg, filepath.Join(dir, "a"), addrA)
	waitShared(t, c, groups...)
	t.Logf("worker A restarted; partitions shared again: %v", groupMembers(t, c, groups[1]))
	more := publishBatches(t, "http://"+addrA, "default", 2500, 500, "after-a")
	more = append(more, publishBatches(t, "http://"+addrB, "default", 2500, 500, "after-b")...)
	reportDelivery(t, s, append(ids, more...))
}

// postBatches is publishBatches for a goroutine: it returns the first
// failure instead of failing the test.
func postBatches(base string, n, per int, prefix string) ([]string, error) {
	var ids []string
	for start := 0; start < n; start += per {
		var batch []map[string]any
		for i := start; i < min(start+per, n); i++ {
			id := fmt.Sprintf("%s-%05d", prefix, i)
			batch = append(batch, map[string]any{"specversion": "1.0", "id": id, "source": "erp", "type": "order.created", "data": map[string]any{"n": i}})
			ids = append(ids, id)
		}
		body, _ := json.Marshal(batch)
		resp, err := http.Post(base+"/v1/buses/default/events", "application/cloudevents-batch+json", bytes.NewReader(body))
		if err != nil {
			return ids, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return ids, fmt.Errorf("publishing batch at %d: %s", start, resp.Status)
		}
	}
	return ids, nil
}
