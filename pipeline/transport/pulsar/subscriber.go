package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	pc "github.com/apache/pulsar-client-go/pulsar"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
)

// minNackDelay bounds how soon a nacked message comes back: the client's
// negative-ack tracker ticks at a third of the delay.
const minNackDelay = 100 * time.Millisecond

// Subscriber consumes topics in one busbar consumer group: each Subscribe
// call connects one Pulsar consumer to the subscription
// SubscriptionName(group) of that topic.
type Subscriber struct {
	t     *Transport
	group string
	opts  transport.SubscribeOptions

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

func newSubscriber(t *Transport, group string, opts transport.SubscribeOptions) *Subscriber {
	if opts.MaxInFlight < 1 {
		opts.MaxInFlight = 1
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	return &Subscriber{t: t, group: group, opts: opts, subs: map[*subscription]struct{}{}}
}

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("pulsar subscriber is closed")

func (s *Subscriber) consumerOptions(topic string) pc.ConsumerOptions {
	c := s.t.cfg
	o := pc.ConsumerOptions{
		Topic:                       c.Topic(topic),
		SubscriptionName:            c.Subscription(s.group),
		Type:                        c.subType,
		SubscriptionInitialPosition: pc.SubscriptionPositionEarliest,
		NackRedeliveryDelay:         max(s.opts.NackDelay, minNackDelay),
		// Prefetch: enough to keep MaxInFlight handlers busy, not so much
		// that one worker hoards a Key_Shared subscription's keys.
		ReceiverQueueSize: min(max(s.opts.MaxInFlight, 10), 1000),
	}
	if c.ackInterval == 0 {
		o.AckGroupingOptions = &pc.AckGroupingOptions{MaxSize: 1}
	} else {
		o.AckGroupingOptions = &pc.AckGroupingOptions{MaxSize: 1000, MaxTime: c.ackInterval}
	}
	if dlq := DeadLetterTopic(topic); c.maxDeliveries > 0 && dlq != "" {
		o.DLQ = &pc.DLQPolicy{
			MaxDeliveries:   uint32(c.maxDeliveries),
			DeadLetterTopic: c.Topic(dlq),
			ProducerOptions: pc.ProducerOptions{
				Interceptors: pc.ProducerInterceptors{deadLetterMarker{from: topic, max: c.maxDeliveries}},
			},
		}
	}
	return o
}

// ReasonDeliveries is the busbar-reason of messages the Pulsar
// dead-letter policy moved (max_deliveries).
const ReasonDeliveries = "deliveries-exhausted"

// deadLetterMarker turns what the client's dead-letter policy sends into a
// busbar dead-letter record: the original properties (metadata) plus why.
type deadLetterMarker struct {
	from string
	max  int
}

func (d deadLetterMarker) BeforeSend(_ pc.Producer, m *pc.ProducerMessage) {
	props := maps.Clone(m.Properties)
	if props == nil {
		props = map[string]string{}
	}
	props[pipeline.MetaReason] = ReasonDeliveries
	props[pipeline.MetaError] = fmt.Sprintf("delivered %d times without an ack (Pulsar dead-letter policy, max_deliveries=%d)", d.max, d.max)
	props[pipeline.MetaAttempts] = strconv.Itoa(d.max)
	props[pipeline.MetaFailedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	props["busbar-dead-letter-from"] = d.from
	m.Properties = props
}

func (deadLetterMarker) OnSendAcknowledgement(pc.Producer, *pc.ProducerMessage, pc.MessageID) {}

// SubscribeInitialize creates the group's durable subscription on topic
// without consuming, so messages published from now on wait for it.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	o := s.consumerOptions(topic)
	o.DLQ = nil
	c, err := s.t.client.Subscribe(o)
	if err != nil {
		return fmt.Errorf("pulsar subscription %s on %s: %w", o.SubscriptionName, o.Topic, err)
	}
	c.Close()
	return nil
}

// Subscribe consumes topic as the subscriber's group. The channel closes
// after ctx is cancelled or the subscriber is closed, once handed-out
// messages were settled or DrainTimeout passed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrSubscriberClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := s.consumerOptions(topic)
	cons, err := s.t.client.Subscribe(o)
	if err != nil {
		return nil, fmt.Errorf("pulsar subscription %s on %s: %w", o.SubscriptionName, o.Topic, err)
	}
	sub := newSubscription(s.t.log.With("topic", o.Topic, "subscription", o.SubscriptionName), cons, s.opts)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.close()
		return nil, ErrSubscriberClosed
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			sub.close()
		case <-sub.stopping:
		}
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	return sub.out, nil
}

// Close closes every subscription (in parallel), draining each.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); sub.close() }()
	}
	wg.Wait()
	s.t.forget(s)
	return nil
}

// subscription is one consumer on one topic. At most MaxInFlight messages
// are handed out and not yet acked or nacked: a slot is taken before each
// Receive and given back when the message is settled.
type subscription struct {
	log          *slog.Logger
	cons         pc.Consumer
	out          chan *message.Message
	slots        chan struct{}
	drainTimeout time.Duration

	recvCtx    context.Context // cancelled when close begins: stops Receive
	stopRecv   context.CancelFunc
	msgCtx     context.Context // parent of message contexts, cancelled at the end
	cancelMsgs context.CancelFunc

	stopping  chan struct{} // closed when close begins
	drained   chan struct{} // closed when the drain wait is over
	loopDone  chan struct{}
	senders   sync.WaitGroup // settle goroutines
	closeOnce sync.Once
}

func newSubscription(log *slog.Logger, cons pc.Consumer, opts transport.SubscribeOptions) *subscription {
	sub := &subscription{
		log:          log,
		cons:         cons,
		out:          make(chan *message.Message),
		slots:        make(chan struct{}, opts.MaxInFlight),
		drainTimeout: opts.DrainTimeout,
		stopping:     make(chan struct{}),
		drained:      make(chan struct{}),
		loopDone:     make(chan struct{}),
	}
	sub.recvCtx, sub.stopRecv = context.WithCancel(context.Background())
	sub.msgCtx, sub.cancelMsgs = context.WithCancel(context.Background())
	go sub.run()
	return sub
}

// run receives and hands out messages while slots are free.
func (sub *subscription) run() {
	defer close(sub.loopDone)
	backoff := 100 * time.Millisecond
	for {
		select {
		case sub.slots <- struct{}{}:
		case <-sub.stopping:
			return
		}
		pm, err := sub.cons.Receive(sub.recvCtx)
		if err != nil {
			<-sub.slots
			if sub.recvCtx.Err() != nil {
				return
			}
			sub.log.Warn("pulsar receive failed", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-sub.stopping:
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		msg := toMessage(pm)
		ctx, cancel := context.WithCancel(sub.msgCtx)
		msg.SetContext(ctx)
		select {
		case sub.out <- msg:
			sub.senders.Add(1)
			go sub.settle(pm, msg, cancel)
		case <-sub.stopping:
			// Not handed out: closing the consumer gives it back to the
			// subscription.
			cancel()
			<-sub.slots
			return
		}
	}
}

// settle waits for the handler's verdict: an ack acknowledges the message
// on the subscription, a nack gives it back for redelivery after the nack
// delay. Past the drain deadline the message is left unacked; closing the
// consumer makes the broker deliver it again.
func (sub *subscription) settle(pm pc.Message, msg *message.Message, cancel context.CancelFunc) {
	defer sub.senders.Done()
	defer func() { <-sub.slots }()
	select {
	case <-msg.Acked():
		cancel()
		if err := sub.cons.Ack(pm); err != nil {
			sub.log.Warn("pulsar ack failed; the message will be delivered again", "uuid", msg.UUID, "error", err)
		}
	case <-msg.Nacked():
		cancel()
		sub.cons.Nack(pm)
	case <-sub.drained:
		cancel()
	}
}

// close drains: stop receiving and handing out, wait up to DrainTimeout
// for handed-out messages to be settled, close the output channel, then
// the consumer (which gives every unacked message back to the
// subscription).
func (sub *subscription) close() {
	sub.closeOnce.Do(func() {
		close(sub.stopping)
		sub.stopRecv()
		<-sub.loopDone
		// Every slot taken belongs to a handed-out message; taking them all
		// back means each was settled.
		deadline := time.NewTimer(sub.drainTimeout)
		n := cap(sub.slots)
	drain:
		for n > 0 {
			select {
			case sub.slots <- struct{}{}:
				n--
			case <-deadline.C:
				break drain
			}
		}
		deadline.Stop()
		close(sub.drained)
		for range cap(sub.slots) - n {
			<-sub.slots
		}
		sub.senders.Wait()
		sub.cancelMsgs()
		close(sub.out)
		sub.cons.Close()
	})
}
