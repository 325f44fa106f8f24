package natsjs

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/busbar/busbar/pipeline/transport"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	goleak.VerifyTestMain(m)
}

// testLogger shows warnings and errors only, so a failing test shows why.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// open starts an embedded transport on dir; it is closed when the test ends
// (closing twice is fine, so tests may close it earlier).
func open(t testing.TB, dir, query string) *Transport {
	t.Helper()
	tr, err := openErr(dir, query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func openErr(dir, query string) (*Transport, error) {
	u, err := url.Parse("embedded://" + query)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return OpenTransport(ctx, u, transport.Options{DataDir: dir, Logger: testLogger()})
}

func newMsgs(n int, prefix string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return msgs
}

func subscribe(t testing.TB, tr *Transport, group, topic string, opts transport.SubscribeOptions) (*Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := tr.NewSubscriber(group, opts)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return sub, ch
}

// receive reads n messages (failing after timeout) and returns them unacked.
func receive(t testing.TB, ch <-chan *message.Message, n int, timeout time.Duration) []*message.Message {
	t.Helper()
	var got []*message.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(got), n)
			}
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages within %s", len(got), n, timeout)
		}
	}
	return got
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

// expectNone fails if a message arrives within d.
func expectNone(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (%q)", m.UUID, m.Payload)
		}
	case <-time.After(d):
	}
}

func uuids(msgs []*message.Message) map[string]bool {
	s := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		s[m.UUID] = true
	}
	return s
}
