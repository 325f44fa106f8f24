package pulsar

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
	"github.com/busbar/busbar/pipeline/transport/pulsar/pulsarfake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger shows warnings and errors only, so a failing test shows why.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openFake opens a transport on an in-memory broker (pulsarfake): the
// adapter's code with a stand-in for the Pulsar client, for contract tests.
func openFake(t testing.TB, query string) (*Transport, *pulsarfake.Broker) {
	t.Helper()
	b := pulsarfake.New()
	t.Cleanup(b.Close)
	return openOn(t, b, query), b
}

func openOn(t testing.TB, b *pulsarfake.Broker, query string) *Transport {
	t.Helper()
	u, err := url.Parse("pulsar://fake:6650?" + query)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := OpenTransport(ctx, u, transport.Options{Logger: testLogger()}, b.Dial)
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

// receive reads n messages (failing after timeout) and returns them
// unsettled.
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

// nothing fails if a message arrives within d.
func nothing(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (%s)", m.UUID, m.Payload)
		}
	case <-time.After(d):
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func urlParse(s string) (*url.URL, error) { return url.Parse(s) }
