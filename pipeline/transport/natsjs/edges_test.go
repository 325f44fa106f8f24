package natsjs

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busbar/busbar/pipeline/transport"
)

const topic = "busbar.q.default.orders.to-erp_http"

// Acked messages must not come back after the server restarts on the same
// dir (watermill-nats pkg/nats deletes the durable consumer on Close, so
// they did: watermill issue #375).
func TestAckedNotRedeliveredAfterReopen(t *testing.T) {
	dir := t.TempDir()
	tr := open(t, dir, "")
	if err := tr.Publisher().Publish(topic, newMsgs(10, "a")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 10})
	receiveAck(t, ch, 10, 10*time.Second)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	tr = open(t, dir, "")
	later := newMsgs(1, "after-restart")
	if err := tr.Publisher().Publish(topic, later...); err != nil {
		t.Fatal(err)
	}
	_, ch = subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 10})
	got := receive(t, ch, 1, 10*time.Second)
	if got[0].UUID != later[0].UUID {
		t.Fatalf("got %q after restart, want only the new message", got[0].Payload)
	}
	got[0].Ack()
	expectNone(t, ch, 500*time.Millisecond)
}

// Messages handed out but never acked are delivered again after a restart,
// whether the transport was closed (the drain naks them) or the server died
// with them in flight. Either way JetStream redelivers them once AckWait has
// passed since their delivery (its redelivery queue is not kept on disk).
func TestUnackedRedeliveredAfterReopen(t *testing.T) {
	for _, how := range []string{"closed", "server died"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			tr := open(t, dir, "")
			sent := newMsgs(5, "u")
			if err := tr.Publisher().Publish(topic, sent...); err != nil {
				t.Fatal(err)
			}
			opts := transport.SubscribeOptions{MaxInFlight: 5, DrainTimeout: 100 * time.Millisecond, AckWait: time.Second}
			_, ch := subscribe(t, tr, "router", topic, opts)
			receive(t, ch, 5, 10*time.Second) // never acked
			if how == "server died" {
				tr.Server().Shutdown()
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}

			tr = open(t, dir, "")
			start := time.Now()
			_, ch = subscribe(t, tr, "router", topic, opts)
			got := uuids(receiveAck(t, ch, 5, 10*time.Second))
			for _, m := range sent {
				if !got[m.UUID] {
					t.Errorf("message %q not redelivered", m.Payload)
				}
			}
			t.Logf("redelivered %s after reopen", time.Since(start))
		})
	}
}

// A consumer group created after messages were published reads them all.
func TestNewGroupGetsOldMessages(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	sent := newMsgs(20, "old")
	if err := tr.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, tr, "late-group", topic, transport.SubscribeOptions{MaxInFlight: 4})
	got := receiveAck(t, ch, 20, 10*time.Second)
	ids := uuids(got)
	for _, m := range sent {
		if !ids[m.UUID] {
			t.Errorf("late group missed %q", m.Payload)
		}
	}
}

// Two groups each get every message.
func TestTwoGroupsEachGetAll(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	_, ch1 := subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 8})
	_, ch2 := subscribe(t, tr, "archive", topic, transport.SubscribeOptions{MaxInFlight: 8})
	sent := newMsgs(30, "g")
	if err := tr.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan *message.Message{"router": ch1, "archive": ch2} {
		ids := uuids(receiveAck(t, ch, 30, 10*time.Second))
		for _, m := range sent {
			if !ids[m.UUID] {
				t.Errorf("group %s missed %q", name, m.Payload)
			}
		}
	}
}

// Close with messages in flight waits for them (no "send on closed
// channel"), then closes the channel; the rest stays for the group.
func TestCloseDrainsInFlight(t *testing.T) {
	for _, how := range []string{"close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			tr := open(t, t.TempDir(), "")
			sent := newMsgs(50, "d")
			if err := tr.Publisher().Publish(topic, sent...); err != nil {
				t.Fatal(err)
			}
			sub, err := tr.NewSubscriber("router", transport.SubscribeOptions{MaxInFlight: 8, DrainTimeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			held := receive(t, ch, 8, 10*time.Second)

			closed := make(chan struct{})
			go func() {
				if how == "close" {
					_ = sub.Close()
				} else {
					cancel()
				}
				close(closed)
			}()
			// The channel stays open while handlers still hold messages.
			select {
			case m, ok := <-ch:
				if ok {
					t.Fatalf("new message %q handed out while draining", m.Payload)
				}
				t.Fatal("channel closed before in-flight messages were settled")
			case <-time.After(300 * time.Millisecond):
			}
			for _, m := range held {
				m.Ack()
			}
			select {
			case _, ok := <-ch:
				if ok {
					t.Fatal("message handed out while draining")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("channel not closed after in-flight messages were acked")
			}
			if how == "close" {
				<-closed
			} else {
				_ = sub.Close()
			}

			// The other 42 are still there for the group, the 8 are not.
			_, ch = subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 50})
			rest := receiveAck(t, ch, 42, 10*time.Second)
			expectNone(t, ch, 300*time.Millisecond)
			ids := uuids(append(held, rest...))
			for _, m := range sent {
				if !ids[m.UUID] {
					t.Errorf("lost %q", m.Payload)
				}
			}
		})
	}
}

// A message still unsettled at DrainTimeout is given back and its context
// cancelled; Close returns.
func TestCloseAbandonsAfterDrainTimeout(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	if err := tr.Publisher().Publish(topic, newMsgs(1, "slow")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{DrainTimeout: 200 * time.Millisecond})
	m := receive(t, ch, 1, 10*time.Second)[0]
	start := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %s", d)
	}
	select {
	case <-m.Context().Done():
	default:
		t.Fatal("message context not cancelled after the drain timeout")
	}
	m.Ack() // a late ack is harmless: nobody listens any more
	_, ch = subscribe(t, tr, "router", topic, transport.SubscribeOptions{})
	if got := receiveAck(t, ch, 1, 5*time.Second)[0]; got.UUID != m.UUID {
		t.Fatalf("got %s, want the abandoned message back", got.UUID)
	}
}

// A handler slower than AckWait keeps its message: InProgress is sent, so
// neither this subscriber nor another one of the group gets it again.
func TestSlowHandlerNotRedelivered(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	opts := transport.SubscribeOptions{MaxInFlight: 2, AckWait: 300 * time.Millisecond}
	_, ch1 := subscribe(t, tr, "router", topic, opts)
	_, ch2 := subscribe(t, tr, "router", topic, opts)
	sent := newMsgs(1, "slow")
	if err := tr.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	var m *message.Message
	select {
	case m = <-ch1:
	case m = <-ch2:
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	// Work for 2s, more than 6 x AckWait.
	deadline := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case d := <-ch1:
			t.Fatalf("redelivered %q while the handler works", d.Payload)
		case d := <-ch2:
			t.Fatalf("redelivered %q while the handler works", d.Payload)
		case <-deadline:
			done = true
		}
	}
	m.Ack()
	expectNone(t, ch1, 500*time.Millisecond)
	expectNone(t, ch2, 10*time.Millisecond)
}

// Nack gives the message back after NackDelay.
func TestNackDelay(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	_, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{NackDelay: 500 * time.Millisecond})
	if err := tr.Publisher().Publish(topic, newMsgs(1, "n")...); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, 1, 10*time.Second)[0]
	nacked := time.Now()
	m.Nack()
	again := receive(t, ch, 1, 10*time.Second)[0]
	if d := time.Since(nacked); d < 450*time.Millisecond {
		t.Fatalf("redelivered after %s, want >= NackDelay 500ms", d)
	}
	if again.UUID != m.UUID {
		t.Fatalf("got %s, want %s again", again.UUID, m.UUID)
	}
	again.Ack()
}

// Publish never silently succeeds once the server is gone.
func TestPublishAfterShutdownFails(t *testing.T) {
	t.Run("transport closed", func(t *testing.T) {
		tr := open(t, t.TempDir(), "")
		pub := tr.Publisher()
		if err := pub.Publish(topic, newMsgs(1, "ok")...); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, newMsgs(1, "late")...); err == nil {
			t.Fatal("Publish after Close succeeded")
		}
	})
	t.Run("server died", func(t *testing.T) {
		tr := open(t, t.TempDir(), "")
		pub := tr.Publisher()
		if err := pub.Publish(topic, newMsgs(1, "ok")...); err != nil {
			t.Fatal(err)
		}
		tr.Server().Shutdown()
		start := time.Now()
		err := pub.Publish(topic, newMsgs(3, "late")...)
		if err == nil {
			t.Fatal("Publish after server shutdown succeeded")
		}
		if d := time.Since(start); d > 11*time.Second {
			t.Fatalf("Publish took %s to fail", d)
		}
		t.Logf("error (after %s): %v", time.Since(start), err)
	})
}

// A batch where one message is too big: the error names it, the others are
// stored.
func TestPublishPartialFailure(t *testing.T) {
	tr := open(t, t.TempDir(), "?max_payload=4KB")
	msgs := newMsgs(3, "p")
	msgs[1].Payload = make([]byte, 8<<10)
	err := tr.Publisher().Publish(topic, msgs...)
	var perr *transport.PublishError
	if !errors.As(err, &perr) {
		t.Fatalf("got %v, want a *transport.PublishError", err)
	}
	if perr.Total != 3 || len(perr.Failed) != 1 || perr.Failed[0].Index != 1 || perr.Failed[0].UUID != msgs[1].UUID {
		t.Fatalf("PublishError = %+v, want only #1 failed", perr)
	}
	_, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 3})
	got := receiveAck(t, ch, 2, 10*time.Second)
	if got[0].UUID != msgs[0].UUID || got[1].UUID != msgs[2].UUID {
		t.Fatalf("stored %q, %q; want p-0, p-2", got[0].Payload, got[1].Payload)
	}
	expectNone(t, ch, 300*time.Millisecond)
}

// Metadata survives byte for byte, including what NATS headers cannot hold.
func TestMetadataRoundTrip(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	m := message.NewMessage(watermill.NewUUID(), []byte("{}"))
	md := map[string]string{
		"ce_type":          "order.created",
		"Content-Type":     "application/json",
		"reason_poisoned":  "line 1\nline 2\r\n",
		"padded":           "  spaces  ",
		"Nats-Msg-Id":      "must not dedup",
		"key with space":   "v",
		"":                 "empty key",
		"empty":            "",
		"unicode":          "订单 ✓",
		HeaderUUID:         "not the uuid",
		"_busbar_ordinary": "x",
	}
	for k, v := range md {
		m.Metadata.Set(k, v)
	}
	if err := tr.Publisher().Publish(topic, m); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{})
	got := receive(t, ch, 1, 10*time.Second)[0]
	got.Ack()
	if got.UUID != m.UUID {
		t.Errorf("UUID %q, want %q", got.UUID, m.UUID)
	}
	for k, v := range md {
		if got.Metadata[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, got.Metadata[k], v)
		}
	}
	if len(got.Metadata) != len(md) {
		t.Errorf("metadata has %d entries, want %d: %v", len(got.Metadata), len(md), got.Metadata)
	}
}

// Concurrent publishers (HTTP handlers) share the publisher safely.
func TestConcurrentPublish(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	pub := tr.Publisher()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if err := pub.Publish(topic, newMsgs(10, "c")...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := tr.js.Stream(context.Background(), "busbar_q_default_orders_to--erp-_http")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2000 {
		t.Fatalf("stream holds %d messages, want 2000", n)
	}
}

// CreateTopic declares a file stream and updates its limits when called
// again; auto_create=false makes an undeclared topic an error.
func TestCreateTopicAndAutoCreate(t *testing.T) {
	tr := open(t, t.TempDir(), "?auto_create=false")
	ctx := context.Background()
	err := tr.Publisher().Publish("busbar.bus.undeclared", newMsgs(1, "x")...)
	if err == nil || !strings.Contains(err.Error(), "not declared") {
		t.Fatalf("publish to undeclared topic: %v, want a 'not declared' error", err)
	}

	for _, opts := range []transport.TopicOptions{{MaxAge: time.Hour}, {MaxAge: 2 * time.Hour, MaxBytes: 1 << 30}} {
		if err := tr.CreateTopic(ctx, "busbar.bus.default", opts); err != nil {
			t.Fatal(err)
		}
		s, err := tr.js.Stream(ctx, "busbar_bus_default")
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.MaxAge != opts.MaxAge || c.Storage != jetstream.FileStorage || c.Retention != jetstream.LimitsPolicy ||
			(opts.MaxBytes != 0 && c.MaxBytes != opts.MaxBytes) || c.Subjects[0] != "busbar.bus.default" {
			t.Fatalf("stream config %+v, want file storage, limits, %+v", c, opts)
		}
	}
	if err := tr.Publisher().Publish("busbar.bus.default", newMsgs(1, "x")...); err != nil {
		t.Fatal(err)
	}
	if err := tr.CreateTopic(ctx, "bad topic", transport.TopicOptions{}); err == nil {
		t.Fatal("CreateTopic accepted a topic with a space")
	}
}

// Open through the registry; no TCP listener; a second process (here: a
// second open) on the same dir is refused clearly; the lock of a closed one
// is released.
func TestOpenRegistryAndLock(t *testing.T) {
	dir := t.TempDir()
	tr, err := transport.Open(context.Background(), "embedded://", transport.Options{DataDir: dir, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if addr := tr.(*Transport).Server().Addr(); addr != nil {
		t.Errorf("embedded server listens on %v, want no TCP port", addr)
	}
	if _, err := openErr(dir, ""); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of one dir: %v, want an 'in use' error", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr2, err := openErr(dir, "")
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	_ = tr2.Close()

	for _, bad := range []string{"embedded://?sync=sometimes", "embedded://?bogus=1", "embedded://host", "nats://", "embedded://?replicas=3"} {
		if _, err := transport.Open(context.Background(), bad, transport.Options{DataDir: dir}); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if _, err := transport.Open(context.Background(), "embedded://", transport.Options{}); err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Errorf("Open without a data dir: %v", err)
	}
}

// sync=always and listen= work (listen on a random loopback port, then a
// nats:// transport connects to it).
func TestSyncAlwaysAndListen(t *testing.T) {
	tr := open(t, t.TempDir(), "?sync=always&listen=127.0.0.1:0")
	addr := tr.Server().Addr()
	if addr == nil {
		t.Fatal("listen= set but no TCP listener")
	}
	remote, err := transport.Open(context.Background(), "nats://"+addr.String(), transport.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if err := remote.Publisher().Publish(topic, newMsgs(3, "remote")...); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 3})
	receiveAck(t, ch, 3, 10*time.Second)
}

// Over nats://, publisher and subscriber survive a restart of the server:
// publishing fails while it is down, then works again, and the subscriber
// resumes without waiting for its old pull request to expire.
func TestNATSReconnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	server := open(t, dir, "?listen="+addr)

	remote, err := transport.Open(context.Background(), "nats://"+addr, transport.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	sub, err := remote.Subscriber("router", transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Publisher().Publish(topic, newMsgs(2, "before")...); err != nil {
		t.Fatal(err)
	}
	receiveAck(t, ch, 2, 10*time.Second)

	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if err := remote.Publisher().Publish(topic, newMsgs(1, "down")...); err == nil {
		t.Fatal("Publish succeeded while the server was down")
	}
	server = open(t, dir, "?listen="+addr)

	after := newMsgs(3, "after")
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := remote.Publisher().Publish(topic, after...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish still failing 15s after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	got := uuids(receiveAck(t, ch, 3, 15*time.Second))
	for _, m := range after {
		if !got[m.UUID] {
			t.Errorf("missed %q after reconnect", m.Payload)
		}
	}
	t.Logf("resumed %s after the first successful publish", time.Since(start))
}

// Someone deletes the group's consumer under a running subscriber: it is
// recreated (reading from the oldest retained message) and consumption goes
// on.
func TestConsumerDeletedIsRecreated(t *testing.T) {
	tr := open(t, t.TempDir(), "")
	_, ch := subscribe(t, tr, "router", topic, transport.SubscribeOptions{MaxInFlight: 4})
	if err := tr.Publisher().Publish(topic, newMsgs(2, "before")...); err != nil {
		t.Fatal(err)
	}
	receiveAck(t, ch, 2, 10*time.Second)
	stream, _ := StreamName(topic)
	if err := tr.js.DeleteConsumer(context.Background(), stream, "router"); err != nil {
		t.Fatal(err)
	}
	after := newMsgs(1, "after")
	if err := tr.Publisher().Publish(topic, after...); err != nil {
		t.Fatal(err)
	}
	// The recreated consumer starts over: "before" twice, then "after".
	got := uuids(receiveAck(t, ch, 3, 20*time.Second))
	if !got[after[0].UUID] {
		t.Fatal("message published after the consumer was deleted not received")
	}
}
