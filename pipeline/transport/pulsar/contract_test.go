package pulsar

// Contract tests: the adapter (Transport, Publisher, Subscriber) against
// pulsarfake, an in-memory implementation of the pulsar-client-go
// interfaces it uses. They prove the adapter's own behaviour — how events
// become Pulsar messages and back, when it acks and nacks, what Close and
// cancellation do, how the dead-letter policy is mapped — given a broker
// that behaves as pulsarfake models it. They prove nothing about
// compatibility with a real Pulsar broker: that is what the PULSAR_URL
// integration tests (integration_test.go) are for.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/pulsar/pulsarfake"
)

var fast = transport.SubscribeOptions{MaxInFlight: 1, NackDelay: 10 * time.Millisecond, DrainTimeout: 2 * time.Second}

func TestContractNames(t *testing.T) {
	tr, b := openFake(t, "tenant=acme&namespace=events&prefix=erp.busbar.&subscription=shared")
	if got := tr.PulsarTopic("busbar.bus.orders"); got != "persistent://acme/events/erp.busbar.bus.orders" {
		t.Errorf("topic %s", got)
	}
	if got := tr.PulsarTopic("other"); got != "persistent://acme/events/other" {
		t.Errorf("foreign topic %s", got)
	}
	if got := tr.SubscriptionName("router"); got != "erp.busbar.router" {
		t.Errorf("subscription %s", got)
	}
	sub, _ := subscribe(t, tr, "router", "busbar.bus.orders", fast)
	defer sub.Close()
	subs := b.Subscriptions("persistent://acme/events/erp.busbar.bus.orders")
	if subs["erp.busbar.router"] != pc.Shared {
		t.Errorf("subscriptions %v, want erp.busbar.router shared", subs)
	}

	tr2, b2 := openFake(t, "")
	sub2, _ := subscribe(t, tr2, "dispatch", "busbar.q.orders.audit.crm", fast)
	defer sub2.Close()
	if got := b2.Subscriptions("persistent://public/default/busbar.q.orders.audit.crm"); got["busbar.dispatch"] != pc.KeyShared {
		t.Errorf("default subscription %v, want busbar.dispatch key_shared", got)
	}
}

func TestContractMessageMapping(t *testing.T) {
	tr, b := openFake(t, "")
	m := message.NewMessage("uuid-1", []byte(`{"specversion":"1.0"}`))
	m.Metadata.Set(MetaPartitionKey, "customer-7")
	m.Metadata.Set(pipeline.MetaEventID, "ev-1")
	m.Metadata.Set("odd key: with/slashes", "line\nbreak and  spaces ")
	m.Metadata.Set("unicode", "订单 ✓")
	m.Metadata.Set("empty", "")
	if err := tr.Publisher().Publish("busbar.bus.orders", m); err != nil {
		t.Fatal(err)
	}
	stored := b.Messages("persistent://public/default/busbar.bus.orders")
	if len(stored) != 1 {
		t.Fatalf("stored %d messages", len(stored))
	}
	s := stored[0]
	if s.Key != "customer-7" || string(s.Payload) != `{"specversion":"1.0"}` || s.Properties[PropertyUUID] != "uuid-1" {
		t.Errorf("stored %+v", s)
	}
	for k, v := range m.Metadata {
		if s.Properties[k] != v {
			t.Errorf("property %q = %q, want %q", k, s.Properties[k], v)
		}
	}
	sub, ch := subscribe(t, tr, "router", "busbar.bus.orders", fast)
	defer sub.Close()
	got := receive(t, ch, 1, 5*time.Second)[0]
	got.Ack()
	if got.UUID != "uuid-1" || string(got.Payload) != string(m.Payload) {
		t.Errorf("got %s %s", got.UUID, got.Payload)
	}
	if len(got.Metadata) != len(m.Metadata) {
		t.Errorf("metadata %v, want %v", got.Metadata, m.Metadata)
	}
	for k, v := range m.Metadata {
		if got.Metadata.Get(k) != v {
			t.Errorf("metadata %q = %q, want %q", k, got.Metadata.Get(k), v)
		}
	}

	// A message from another producer: no UUID property, a key.
	b.Publish("persistent://public/default/busbar.bus.foreign", pulsarfake.Message{Payload: []byte("x"), Key: "k", Properties: map[string]string{"a": "b"}})
	sub2, ch2 := subscribe(t, tr, "router", "busbar.bus.foreign", fast)
	defer sub2.Close()
	f := receive(t, ch2, 1, 5*time.Second)[0]
	f.Ack()
	if !strings.HasPrefix(f.UUID, "persistent://public/default/busbar.bus.foreign/") || f.Metadata.Get("a") != "b" || f.Metadata.Get(MetaPartitionKey) != "k" {
		t.Errorf("foreign message: uuid %q metadata %v", f.UUID, f.Metadata)
	}
}

func TestContractAckOnlyAfterHandlerAcks(t *testing.T) {
	tr, b := openFake(t, "")
	const topic = "persistent://public/default/busbar.q.b.r.t"
	if err := tr.Publisher().Publish("busbar.q.b.r.t", newMsgs(3, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", transport.SubscribeOptions{MaxInFlight: 2, DrainTimeout: time.Second})
	got := receive(t, ch, 2, 5*time.Second)
	nothing(t, ch, 100*time.Millisecond) // MaxInFlight 2: the third waits
	if n := b.Backlog(topic, "busbar.dispatch"); n != 3 {
		t.Fatalf("backlog %d before any ack, want 3", n)
	}
	got[0].Ack()
	third := receive(t, ch, 1, 5*time.Second)
	waitFor(t, 5*time.Second, "the ack to reach the broker", func() bool { return b.Backlog(topic, "busbar.dispatch") == 2 })
	got[1].Ack()
	third[0].Ack()
	waitFor(t, 5*time.Second, "every ack", func() bool { return b.Backlog(topic, "busbar.dispatch") == 0 })
	sub.Close()

	// Acked messages are not delivered to the group again.
	sub2, ch2 := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", fast)
	defer sub2.Close()
	nothing(t, ch2, 200*time.Millisecond)
}

func TestContractNackRedeliversAfterDelay(t *testing.T) {
	tr, _ := openFake(t, "")
	if err := tr.Publisher().Publish("busbar.q.b.r.t", newMsgs(1, "m")...); err != nil {
		t.Fatal(err)
	}
	opts := fast
	opts.NackDelay = 300 * time.Millisecond
	sub, ch := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", opts)
	defer sub.Close()
	first := receive(t, ch, 1, 5*time.Second)[0]
	nacked := time.Now()
	first.Nack()
	select {
	case <-first.Context().Done():
	case <-time.After(time.Second):
		t.Error("the nacked message's context was not cancelled")
	}
	again := receive(t, ch, 1, 5*time.Second)[0]
	if d := time.Since(nacked); d < 300*time.Millisecond {
		t.Errorf("redelivered after %v, before the nack delay", d)
	}
	if again.UUID != first.UUID {
		t.Errorf("redelivered %s, want %s", again.UUID, first.UUID)
	}
	again.Ack()
}

func TestContractMinimumNackDelay(t *testing.T) {
	tr, _ := openFake(t, "")
	s, _ := tr.NewSubscriber("g", transport.SubscribeOptions{})
	if d := s.consumerOptions("busbar.q.a.b.c").NackRedeliveryDelay; d != minNackDelay {
		t.Errorf("nack delay %v for NackDelay 0, want %v (not the client's default of a minute)", d, minNackDelay)
	}
	s.Close()
}

func TestContractCloseDrainsInFlight(t *testing.T) {
	tr, b := openFake(t, "")
	const topic = "persistent://public/default/busbar.q.b.r.t"
	if err := tr.Publisher().Publish("busbar.q.b.r.t", newMsgs(2, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", transport.SubscribeOptions{MaxInFlight: 1, DrainTimeout: 5 * time.Second})
	m := receive(t, ch, 1, 5*time.Second)[0]
	closed := make(chan struct{})
	go func() { sub.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handed-out message was neither acked nor nacked")
	case <-time.After(200 * time.Millisecond):
	}
	m.Ack() // finishing during the drain counts
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the last message was acked")
	}
	if _, ok := <-ch; ok {
		t.Error("the output channel is still open after Close")
	}
	if n := b.Backlog(topic, "busbar.dispatch"); n != 1 {
		t.Errorf("backlog %d, want 1 (the acked one gone, the other kept)", n)
	}
}

func TestContractDrainTimeoutGivesMessagesBack(t *testing.T) {
	tr, _ := openFake(t, "")
	if err := tr.Publisher().Publish("busbar.q.b.r.t", newMsgs(1, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", transport.SubscribeOptions{MaxInFlight: 1, DrainTimeout: 100 * time.Millisecond})
	m := receive(t, ch, 1, 5*time.Second)[0]
	t0 := time.Now()
	sub.Close()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close took %v with a 100ms drain timeout", d)
	}
	select {
	case <-m.Context().Done():
	default:
		t.Error("the abandoned message's context is not cancelled")
	}
	m.Ack() // too late: ignored
	sub2, ch2 := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", fast)
	defer sub2.Close()
	again := receive(t, ch2, 1, 5*time.Second)[0]
	if again.UUID != m.UUID {
		t.Errorf("got %s, want the abandoned %s again", again.UUID, m.UUID)
	}
	again.Ack()
}

func TestContractContextCancelClosesChannel(t *testing.T) {
	tr, _ := openFake(t, "")
	if err := tr.Publisher().Publish("busbar.bus.x", newMsgs(1, "m")...); err != nil {
		t.Fatal(err)
	}
	sub, err := tr.NewSubscriber("router", fast)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, "busbar.bus.x")
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, 1, 5*time.Second)[0]
	m.Ack()
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("message after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the context was cancelled")
	}
	if _, err := sub.Subscribe(ctx, "busbar.bus.x"); err == nil {
		t.Error("Subscribe with a cancelled context succeeded")
	}
}

func TestContractCloseWhileWaitingForMessages(t *testing.T) {
	tr, b := openFake(t, "")
	sub, ch := subscribe(t, tr, "router", "busbar.bus.idle", fast)
	waitFor(t, time.Second, "the consumer", func() bool { return b.Consumers("persistent://public/default/busbar.bus.idle", "busbar.router") == 1 })
	t0 := time.Now()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close of an idle subscription took %v", d)
	}
	if _, ok := <-ch; ok {
		t.Error("channel open after Close")
	}
	if n := b.Consumers("persistent://public/default/busbar.bus.idle", "busbar.router"); n != 0 {
		t.Errorf("%d consumers still connected", n)
	}
	if _, err := sub.Subscribe(context.Background(), "busbar.bus.idle"); !errors.Is(err, ErrSubscriberClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContractPublisherClose(t *testing.T) {
	tr, _ := openFake(t, "")
	p := tr.NewPublisher()
	if err := p.Publish("busbar.bus.x", newMsgs(1, "m")...); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish("busbar.bus.x", newMsgs(1, "m")...); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The shared publisher ignores Close: the transport owns it.
	if err := tr.Publisher().Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Publish("busbar.bus.x", newMsgs(1, "m")...); err != nil {
		t.Errorf("shared publisher after Close: %v", err)
	}
}

func TestContractPartialPublishFailure(t *testing.T) {
	tr, b := openFake(t, "")
	var sends atomic.Int32
	b.SetFault(func(op, topic string) error {
		if op == "send" && sends.Add(1) == 2 {
			return errors.New("bookie unavailable")
		}
		return nil
	})
	msgs := newMsgs(3, "m")
	err := tr.Publisher().Publish("busbar.bus.x", msgs...)
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want a *transport.PublishError", err)
	}
	if pe.Total != 3 || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 || pe.Failed[0].UUID != msgs[1].UUID {
		t.Errorf("PublishError %+v", pe)
	}
	if n := len(b.Messages("persistent://public/default/busbar.bus.x")); n != 2 {
		t.Errorf("stored %d, want 2", n)
	}
}

func TestContractProducerCreationRetried(t *testing.T) {
	tr, b := openFake(t, "")
	var fail atomic.Bool
	fail.Store(true)
	b.SetFault(func(op, topic string) error {
		if op == "create-producer" && fail.Load() {
			return errors.New("topic is being deleted")
		}
		return nil
	})
	if err := tr.Publisher().Publish("busbar.bus.x", newMsgs(1, "m")...); err == nil || !strings.Contains(err.Error(), "topic is being deleted") {
		t.Fatalf("error %v", err)
	}
	fail.Store(false)
	if err := tr.Publisher().Publish("busbar.bus.x", newMsgs(1, "m")...); err != nil {
		t.Fatalf("after the broker recovered: %v", err)
	}
}

func TestContractDeadLetterPolicy(t *testing.T) {
	tr, b := openFake(t, "max_deliveries=2")
	m := message.NewMessage("poison", []byte("x"))
	m.Metadata.Set(pipeline.MetaEventID, "ev-9")
	m.Metadata.Set(MetaPartitionKey, "k")
	if err := tr.Publisher().Publish("busbar.q.orders.audit.crm", m); err != nil {
		t.Fatal(err)
	}
	sub, ch := subscribe(t, tr, "dispatch", "busbar.q.orders.audit.crm", fast)
	defer sub.Close()
	for i := 0; i < 2; i++ { // max_deliveries=2: two deliveries, then the dead-letter topic
		got := receive(t, ch, 1, 5*time.Second)[0]
		got.Nack()
	}
	const dlq = "persistent://public/default/busbar.dlq.orders.audit.crm"
	waitFor(t, 5*time.Second, "the dead letter", func() bool { return len(b.Messages(dlq)) == 1 })
	d := b.Messages(dlq)[0]
	want := map[string]string{
		PropertyUUID: "poison", pipeline.MetaEventID: "ev-9", MetaPartitionKey: "k",
		pipeline.MetaReason: ReasonDeliveries, pipeline.MetaAttempts: "2", "busbar-dead-letter-from": "busbar.q.orders.audit.crm",
	}
	for k, v := range want {
		if d.Properties[k] != v {
			t.Errorf("dead letter property %s = %q, want %q", k, d.Properties[k], v)
		}
	}
	if d.Properties[pipeline.MetaError] == "" || d.Properties[pipeline.MetaFailedAt] == "" {
		t.Errorf("dead letter without error or time: %v", d.Properties)
	}
	if d.Key != "k" || string(d.Payload) != "x" {
		t.Errorf("dead letter key %q payload %q", d.Key, d.Payload)
	}
	nothing(t, ch, 300*time.Millisecond)
	waitFor(t, 5*time.Second, "the original to be acked", func() bool {
		return b.Backlog("persistent://public/default/busbar.q.orders.audit.crm", "busbar.dispatch") == 0
	})
	if got := DeadLetterTopic("busbar.bus.orders"); got != "busbar.dlq.bus.orders" {
		t.Errorf("bus dead-letter topic %s", got)
	}
	if got := DeadLetterTopic("busbar.dlq.orders.a.b"); got != "" {
		t.Errorf("dead-letter queues get a dead-letter topic %q", got)
	}
	s, _ := tr.NewSubscriber("x", fast)
	if s.consumerOptions("busbar.dlq.bus.orders").DLQ != nil {
		t.Error("a dead-letter queue has a dead-letter policy")
	}
	s.Close()
}

func TestContractKeySharedKeepsKeysTogether(t *testing.T) {
	tr, _ := openFake(t, "")
	var msgs []*message.Message
	for i := 0; i < 200; i++ {
		m := message.NewMessage(string(rune('a'+i%26))+"-"+time.Now().Format("150405.000000")+string(rune(i)), []byte{byte(i)})
		m.Metadata.Set(MetaPartitionKey, "key-"+string(rune('a'+i%10)))
		msgs = append(msgs, m)
	}
	s1, ch1 := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", transport.SubscribeOptions{MaxInFlight: 8, DrainTimeout: time.Second})
	defer s1.Close()
	s2, ch2 := subscribe(t, tr, "dispatch", "busbar.q.b.r.t", transport.SubscribeOptions{MaxInFlight: 8, DrainTimeout: time.Second})
	defer s2.Close()
	if err := tr.Publisher().Publish("busbar.q.b.r.t", msgs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	owner := map[string]int{}
	order := map[string][]byte{}
	n := 0
	deadline := time.After(10 * time.Second)
	for n < len(msgs) {
		var m *message.Message
		var who int
		select {
		case m = <-ch1:
			who = 1
		case m = <-ch2:
			who = 2
		case <-deadline:
			t.Fatalf("received %d of %d", n, len(msgs))
		}
		k := m.Metadata.Get(MetaPartitionKey)
		mu.Lock()
		if o, ok := owner[k]; ok && o != who {
			t.Errorf("key %s went to both consumers", k)
		}
		owner[k] = who
		order[k] = append(order[k], m.Payload[0])
		mu.Unlock()
		m.Ack()
		n++
	}
	used := map[int]bool{}
	for _, o := range owner {
		used[o] = true
	}
	if len(used) != 2 {
		t.Errorf("all keys went to one consumer: %v", owner)
	}
	for k, seq := range order {
		for i := 1; i < len(seq); i++ {
			if seq[i] < seq[i-1] {
				t.Errorf("key %s out of order: %v", k, seq)
				break
			}
		}
	}
}

func TestContractOpenFailsClearlyWhenLookupFails(t *testing.T) {
	b := pulsarfake.New()
	defer b.Close()
	b.SetFault(func(op, topic string) error {
		if op == "lookup" {
			return errors.New("authentication failed")
		}
		return nil
	})
	u, _ := urlParse("pulsar://fake:6650?token=s3cret")
	_, err := OpenTransport(context.Background(), u, transport.Options{Logger: testLogger()}, b.Dial)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the brokers at pulsar://fake:6650") || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the token: %v", err)
	}
	if n := b.OpenClients(); n != 0 {
		t.Errorf("%d clients left open", n)
	}
}

func TestContractClientOptions(t *testing.T) {
	b := pulsarfake.New()
	defer b.Close()
	tr := openOn(t, b, "token=abc&connect_timeout=3s&operation_timeout=4s&listener_name=external")
	o := tr.client.(*pulsarfake.Client).Options()
	if o.URL != "pulsar://fake:6650" || o.ConnectionTimeout != 3*time.Second || o.OperationTimeout != 4*time.Second || o.ListenerName != "external" {
		t.Errorf("options %+v", o)
	}
	if o.Authentication == nil {
		t.Error("no token authentication")
	}
	if o.Logger == nil {
		t.Error("the client logs through logrus, not busbar's logger")
	}
}
