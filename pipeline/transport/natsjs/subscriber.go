package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busbar/busbar/pipeline/transport"
)

const (
	defaultAckWait      = 30 * time.Second
	defaultDrainTimeout = 10 * time.Second
	// ackTimeout bounds the wait for the server's confirmation of an ack,
	// and for the inbox to drain on Close.
	ackTimeout = 5 * time.Second
	// pollWait is how long one pull request waits for messages. Longer means
	// less idle traffic; Close does not wait for it.
	pollWait = 30 * time.Second
	// maxFetch caps the messages asked for in one pull request.
	maxFetch = 256
)

// Subscriber consumes topics as one durable consumer group. It implements
// message.Subscriber and message.SubscribeInitializer.
type Subscriber struct {
	t       *Transport
	group   string
	durable string
	opts    transport.SubscribeOptions
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup // one per live subscription
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("natsjs: subscriber is closed")

func newSubscriber(t *Transport, group string, opts transport.SubscribeOptions) (*Subscriber, error) {
	durable, err := ConsumerName(group)
	if err != nil {
		return nil, err
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	if opts.AckWait <= 0 {
		opts.AckWait = defaultAckWait
	}
	if opts.NackDelay < 0 {
		opts.NackDelay = 0
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = defaultDrainTimeout
	}
	nc, err := t.connect("busbar-sub-" + group)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Subscriber{
		t: t, group: group, durable: durable, opts: opts, nc: nc, js: js,
		log:     t.log.With("group", group),
		closing: make(chan struct{}),
	}, nil
}

// SubscribeInitialize declares topic (as the first Publish would).
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.t.cfg.publishTimeout)
	defer cancel()
	return s.t.ensureTopic(ctx, topic)
}

// consumerConfig is the durable pull consumer of this group on one stream.
func (s *Subscriber) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       s.durable,
		Description:   "busbar consumer group " + s.group,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opts.AckWait,
		MaxDeliver:    -1,
		// Nacked messages waiting for their NackDelay still count as
		// pending, so leave room beyond MaxInFlight or a few poison
		// messages would stall the group. MaxInFlight is enforced here.
		MaxAckPending: max(4*s.opts.MaxInFlight, 1024),
	}
}

// consumer declares (or updates) the group's durable consumer on the
// stream of topic and returns the stream name.
func (s *Subscriber) consumer(ctx context.Context, topic string) (string, error) {
	if err := s.t.ensureTopic(ctx, topic); err != nil {
		return "", err
	}
	stream, _ := StreamName(topic) // validated by ensureTopic
	if _, err := s.js.CreateOrUpdateConsumer(ctx, stream, s.consumerConfig()); err != nil {
		return "", fmt.Errorf("consumer group %q on topic %q (consumer %s on stream %s): %w", s.group, topic, s.durable, stream, err)
	}
	return stream, nil
}

// Subscribe starts consuming topic. Up to MaxInFlight messages are handed
// out unacked at once. The channel is closed after Close or cancellation of
// ctx, once every handed-out message was acked or nacked (or DrainTimeout
// passed).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.running.Add(1)
	s.mu.Unlock()

	sb, err := s.newSubscription(ctx, topic)
	if err != nil {
		s.running.Done()
		return nil, err
	}
	go sb.run(ctx)
	return sb.out, nil
}

// Close stops fetching, waits up to DrainTimeout for handed-out messages to
// be acked or nacked, closes the output channels, then the connection.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()

	s.running.Wait()
	s.nc.Close()
	s.t.forget(s)
	return nil
}

// subscription is one Subscribe call: a pull loop on its own inbox plus one
// tracking goroutine per handed-out message.
//
// It speaks the JetStream pull protocol itself rather than using
// jetstream.Consumer.Fetch: cancelling a Fetch unsubscribes its inbox and
// drops messages already on their way, which then wait a whole AckWait
// before redelivery. Here the inbox is drained on stop (the server sends
// nothing to a pull request whose inbox has no interest), and whatever
// still arrives is given back with a Nak at once.
type subscription struct {
	s        *Subscriber
	topic    string
	stream   string
	nextSubj string // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>
	out      chan *message.Message
	log      *slog.Logger

	inbox    *nats.Subscription
	incoming chan *nats.Msg
	inboxEnd chan struct{} // closed when the inbox subscription is gone
	dead     chan struct{} // closed when nobody reads incoming any more

	used     atomic.Int64  // messages handed out (or being handed out), not settled
	wake     chan struct{} // signalled (cap 1) when a message is settled
	inflight sync.WaitGroup
	abandon  chan struct{} // closed when DrainTimeout passes
	msgCtx   context.Context
	lastAck  atomic.Pointer[nats.Msg] // the last message acked without confirmation

	// working holds the handed-out, unsettled messages with the time each
	// was handed out; one ticker per subscription (progressLoop) tells the
	// server they are still being worked on, instead of a ticker per
	// message.
	workingMu sync.Mutex
	working   map[*nats.Msg]time.Time
}

func (s *Subscriber) newSubscription(ctx context.Context, topic string) (*subscription, error) {
	cctx, cancel := context.WithTimeout(ctx, s.t.cfg.publishTimeout)
	stream, err := s.consumer(cctx, topic)
	cancel()
	if err != nil {
		return nil, err
	}
	sb := &subscription{
		s:        s,
		topic:    topic,
		stream:   stream,
		nextSubj: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + s.durable,
		out:      make(chan *message.Message),
		log:      s.log.With("topic", topic),
		incoming: make(chan *nats.Msg, s.opts.MaxInFlight+8),
		inboxEnd: make(chan struct{}),
		dead:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		abandon:  make(chan struct{}),
		msgCtx:   context.WithoutCancel(ctx),
		working:  make(map[*nats.Msg]time.Time),
	}
	sb.inbox, err = s.nc.Subscribe(s.nc.NewInbox(), func(m *nats.Msg) {
		select {
		case sb.incoming <- m:
		case <-sb.dead:
			sb.giveBack(m)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("consumer group %q on topic %q: inbox: %w", s.group, topic, err)
	}
	sb.inbox.SetClosedHandler(func(string) { close(sb.inboxEnd) })
	return sb, nil
}

func (sb *subscription) run(ctx context.Context) {
	defer sb.s.running.Done()
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sb.s.closing:
			cancel()
		case <-stop.Done():
		}
	}()

	progressDone := make(chan struct{})
	progressStopped := make(chan struct{})
	go func() { defer close(progressStopped); sb.progressLoop(progressDone) }()
	defer func() { close(progressDone); <-progressStopped }()

	sb.pullLoop(stop)
	sb.drainInbox()

	// Drain: nothing new is handed out; wait for the handlers. The output
	// channel is closed only here, after the pull loop (its only sender)
	// returned, so "send on closed channel" cannot happen.
	done := make(chan struct{})
	go func() { sb.inflight.Wait(); close(done) }()
	timer := time.NewTimer(sb.s.opts.DrainTimeout)
	select {
	case <-done:
	case <-timer.C:
		sb.log.Warn("drain timeout: nacking messages still in flight; they will be delivered again",
			"in_flight", sb.used.Load(), "drain_timeout", sb.s.opts.DrainTimeout)
		close(sb.abandon)
		<-done
	}
	timer.Stop()
	sb.confirmAcks()
	close(sb.out)
}

// confirmAcks waits until the server has handled every plain ack sent so
// far. The server handles one consumer's acks in order and answers a
// progress signal sent as a request, even for a message already acked, so
// its answer is the barrier.
func (sb *subscription) confirmAcks() {
	nm := sb.lastAck.Load()
	if nm == nil || !sb.s.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if _, err := sb.s.nc.RequestWithContext(ctx, nm.Reply, []byte("+WPI")); err != nil {
		sb.log.Debug("acks not confirmed before close; a few acked messages may be delivered again", "err", err)
	}
}

// pullLoop keeps at most one pull request open, asking for as many
// messages as there are free slots, until ctx ends.
func (sb *subscription) pullLoop(ctx context.Context) {
	maxInFlight := int64(sb.s.opts.MaxInFlight)
	open := false // a pull request is outstanding
	left := 0     // messages the open request may still bring
	var retry time.Duration
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var backoff <-chan time.Time
	// A reconnect loses the open pull request (the server may have
	// restarted): ask again at once instead of waiting for its expiry.
	reconnected := sb.s.nc.StatusChanged(nats.CONNECTED)
	defer sb.s.nc.RemoveStatusListener(reconnected)

	// Ask for more only once a quarter of the slots are free (or all of
	// them, for small windows): under load that is one pull request per
	// MaxInFlight/4 messages instead of one per settled message.
	threshold := max(maxInFlight/4, 1)
	for {
		if used := sb.used.Load(); !open && backoff == nil && (maxInFlight-used >= threshold || used == 0) {
			n := min(int(maxInFlight-used), maxFetch)
			req := fmt.Sprintf(`{"batch":%d,"expires":%d}`, n, pollWait.Nanoseconds())
			if err := sb.s.nc.PublishRequest(sb.nextSubj, sb.inbox.Subject, []byte(req)); err != nil {
				retry = min(max(2*retry, 50*time.Millisecond), 5*time.Second)
				sb.logRetry("pull request failed; retrying", "err", err, "retry_in", retry)
				backoff = time.After(retry)
			} else {
				open, left = true, n
				expiry.Reset(pollWait + 5*time.Second) // the server answers 408 at pollWait
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-backoff:
			backoff = nil
		case <-sb.wake:
		case <-reconnected:
			open = false
		case <-expiry.C:
			open = false // no answer: the request was lost
		case m := <-sb.incoming:
			if m.Reply != "" {
				retry = 0
				if left--; left == 0 {
					open = false
				}
				sb.handOut(ctx, m)
				continue
			}
			status, desc := m.Header.Get("Status"), m.Header.Get("Description")
			switch status {
			case "100": // heartbeat
			case "404", "408": // no messages / request expired: ask again
				retry = 0
				open = false
			default:
				open = false
				retry = min(max(2*retry, 50*time.Millisecond), 5*time.Second)
				sb.logRetry("pull request refused; retrying", "status", status, "description", desc, "retry_in", retry)
				backoff = time.After(retry)
				// 409 "Consumer Deleted" while a request was open, 503 (no
				// responders) for a request to a consumer that is gone.
				if status == "503" || strings.Contains(strings.ToLower(desc), "consumer deleted") {
					sb.recreateConsumer(ctx)
				}
			}
		}
	}
}

// logRetry warns, or only debugs while the connection is down (losing it
// was already logged).
func (sb *subscription) logRetry(msg string, args ...any) {
	if sb.s.nc.IsConnected() {
		sb.log.Warn(msg, args...)
	} else {
		sb.log.Debug(msg, args...)
	}
}

// recreateConsumer brings back a group's consumer that someone deleted.
func (sb *subscription) recreateConsumer(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if _, err := sb.s.consumer(cctx, sb.topic); err != nil {
		sb.log.Warn("consumer was deleted and could not be recreated", "err", err)
		return
	}
	sb.log.Warn("consumer was deleted; recreated it (delivery restarts from the oldest retained message)")
}

// drainInbox ends the inbox subscription without losing what is on its way:
// every message that still arrives is given back (Nak) for redelivery now.
func (sb *subscription) drainInbox() {
	defer close(sb.dead)
	if !sb.s.nc.IsConnected() {
		_ = sb.inbox.Unsubscribe() // nothing can arrive, nothing can be given back
		return
	}
	if err := sb.inbox.Drain(); err != nil {
		_ = sb.inbox.Unsubscribe()
		return
	}
	timeout := time.NewTimer(ackTimeout)
	defer timeout.Stop()
	for {
		select {
		case m := <-sb.incoming:
			sb.giveBack(m)
		case <-sb.inboxEnd:
			for {
				select {
				case m := <-sb.incoming:
					sb.giveBack(m)
				default:
					return
				}
			}
		case <-timeout.C:
			return
		}
	}
}

// giveBack naks a message that arrived after the pull loop stopped.
func (sb *subscription) giveBack(m *nats.Msg) {
	if m.Reply == "" {
		return // status message
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	_ = nakSync(ctx, sb.s.nc, m, 0)
}

// handOut gives one fetched message to the reader of the output channel and
// starts tracking it.
func (sb *subscription) handOut(ctx context.Context, nm *nats.Msg) {
	wm, err := unmarshal(nm)
	if err != nil {
		sb.log.Warn("message metadata partly unreadable; delivering it anyway", "err", err)
	}
	mctx, mcancel := context.WithCancel(sb.msgCtx)
	wm.SetContext(mctx)
	notHanded := make(chan struct{})
	sb.inflight.Add(1)
	sb.used.Add(1)
	sb.workingMu.Lock()
	sb.working[nm] = time.Now()
	sb.workingMu.Unlock()
	go sb.track(nm, wm, mcancel, notHanded)
	if ctx.Err() == nil {
		select {
		case sb.out <- wm:
			return
		case <-ctx.Done():
		}
	}
	close(notHanded)
}

// track settles one message: Ack -> a plain ack, Nack ->
// NakWithDelay(NackDelay). Meanwhile progressLoop tells the server that the
// message is still being worked on, so a slow handler does not cause a
// redelivery.
//
// While the subscription runs, an ack is sent without waiting for the
// server's confirmation, so the slot is free at once: acks and the next
// pull request travel in order on one connection, and an ack that is lost
// (the connection or the process dies first) only means the message is
// delivered again, which at-least-once allows. Once the subscriber is
// closing, acks are confirmed (AckSync): the server handles a consumer's
// acks in order, so the confirmation of the last ones also covers the
// plain acks sent before them, and a graceful restart redelivers nothing
// that was acked.
func (sb *subscription) track(nm *nats.Msg, wm *message.Message, cancel context.CancelFunc, notHanded <-chan struct{}) {
	defer func() {
		sb.workingMu.Lock()
		delete(sb.working, nm)
		sb.workingMu.Unlock()
		cancel()
		sb.used.Add(-1)
		select {
		case sb.wake <- struct{}{}:
		default:
		}
		sb.inflight.Done()
	}()
	select {
	case <-wm.Acked():
		select {
		case <-sb.s.closing:
		default:
			sb.lastAck.Store(nm)
			if err := nm.Ack(); err != nil {
				sb.log.Warn("ack not sent; the message will be delivered again", "uuid", wm.UUID, "err", err)
			}
			return
		}
		ctx, c := context.WithTimeout(context.Background(), ackTimeout)
		err := nm.AckSync(nats.Context(ctx))
		c()
		if err != nil {
			sb.log.Warn("ack not confirmed; the message will be delivered again", "uuid", wm.UUID, "err", err)
		}
	case <-wm.Nacked():
		sb.nak(nm, wm, sb.s.opts.NackDelay)
	case <-notHanded:
		sb.nak(nm, wm, 0)
	case <-sb.abandon:
		sb.nak(nm, wm, 0)
	}
}

// progressLoop sends a progress signal (+WPI) every AckWait/3 for each
// message that has been worked on for at least half of that, so the first
// signal goes out by AckWait/2 at the latest, until done is closed. A
// signal racing with the message's ack is harmless: the server ignores
// progress on an acked message.
func (sb *subscription) progressLoop(done <-chan struct{}) {
	every := max(sb.s.opts.AckWait/3, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var due []*nats.Msg
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			due = due[:0]
			sb.workingMu.Lock()
			for nm, since := range sb.working {
				if now.Sub(since) >= every/2 {
					due = append(due, nm)
				}
			}
			sb.workingMu.Unlock()
			for _, nm := range due {
				if err := nm.InProgress(); err != nil && !errors.Is(err, nats.ErrMsgAlreadyAckd) {
					sb.log.Debug("in-progress signal failed", "err", err)
				}
			}
			clear(due)
		}
	}
}

// nak gives a message back, waiting for the server to confirm, so a Nak
// sent just before Close is not lost with the connection (it would then
// wait a whole AckWait).
func (sb *subscription) nak(nm *nats.Msg, wm *message.Message, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	err := nakSync(ctx, sb.s.nc, nm, delay)
	if err != nil {
		sb.log.Debug("nak not confirmed; the message will be delivered again after AckWait", "uuid", wm.UUID, "err", err)
	}
}

// nakSync sends -NAK (with a delay when > 0) as a request, which the server
// answers once it has processed it.
func nakSync(ctx context.Context, nc *nats.Conn, nm *nats.Msg, delay time.Duration) error {
	if nm.Reply == "" {
		return nats.ErrMsgNoReply
	}
	body := []byte("-NAK")
	if delay > 0 {
		body = fmt.Appendf(nil, `-NAK {"delay": %d}`, delay.Nanoseconds())
	}
	_, err := nc.RequestWithContext(ctx, nm.Reply, body)
	return err
}
