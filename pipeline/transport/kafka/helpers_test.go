package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/busbar/busbar/pipeline/transport"
)

// testLogger shows warnings and errors only, so a failing test shows why.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cluster starts a kfake cluster (3 brokers on loopback, auto topic
// creation, 1 partition by default) for the test.
func cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// open opens a transport of scheme on c with extra URL query options.
func open(t testing.TB, c *kfake.Cluster, scheme, query string) *Transport {
	t.Helper()
	raw := fmt.Sprintf("%s://%s?session_timeout=6s&commit_interval=100ms", scheme, strings.Join(c.ListenAddrs(), ","))
	if query != "" {
		raw += "&" + query
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := OpenTransport(ctx, u, transport.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func newMsgs(n int, prefix string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return msgs
}

// receiveAck reads n messages, acking each as it comes.
func receiveAck(t testing.TB, ch <-chan *message.Message, n int, timeout time.Duration) []*message.Message {
	t.Helper()
	var got []*message.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(got), n)
			}
			m.Ack()
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages within %s", len(got), n, timeout)
		}
	}
	return got
}
