package natsjs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/busbar/busbar/pipeline/transport"
)

// Publisher publishes watermill messages to JetStream. Publish sends all
// messages of one call asynchronously and returns once every one has its
// PubAck (stored by the stream), so a batch costs about one round trip. It
// is safe for concurrent use; all callers share one connection and one
// window of at most max_pending unacknowledged messages.
type Publisher struct {
	t       *Transport
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration

	known sync.Map // topic -> true once its stream is known to exist

	closeOnce sync.Once
	closed    chan struct{} // closed by Close or when the connection closes
}

var _ message.Publisher = (*Publisher)(nil)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("natsjs: publisher is closed")

func newPublisher(t *Transport) (*Publisher, error) {
	nc, err := t.connect("busbar-publisher")
	if err != nil {
		return nil, err
	}
	p := &Publisher{t: t, nc: nc, timeout: t.cfg.publishTimeout, closed: make(chan struct{})}
	// PublishMsgAsync does not fail pending futures when the connection
	// closes for good; watch for that ourselves so Publish never hangs.
	nc.SetClosedHandler(func(*nats.Conn) { p.markClosed() })
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(t.cfg.maxPending),
		jetstream.WithPublishAsyncTimeout(t.cfg.publishTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return p, nil
}

// NewPublisher opens an extra publisher with its own connection (Publisher
// is the shared one). Close it when done.
func (t *Transport) NewPublisher() (*Publisher, error) { return newPublisher(t) }

func (p *Publisher) markClosed() { p.closeOnce.Do(func() { close(p.closed) }) }

// Publish stores msgs on topic. A nil error means every message was
// acknowledged by JetStream (written to the stream's file store). Otherwise
// the error is a *transport.PublishError naming each message that was not
// stored; the others were. A message whose ack did not arrive (timeout,
// lost connection) may or may not have been stored: retrying it can make a
// duplicate, never a loss.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	select {
	case <-p.closed:
		return ErrPublisherClosed
	default:
	}
	if len(msgs) == 0 {
		return nil
	}
	deadline := time.Now().Add(p.timeout)
	stream, err := StreamName(topic)
	if err != nil {
		return err
	}
	if _, ok := p.known.Load(topic); !ok {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := p.t.ensureTopic(ctx, topic)
		cancel()
		if err != nil {
			return err
		}
		p.known.Store(topic, true)
	}

	perr := &transport.PublishError{Topic: topic, Total: len(msgs)}
	fail := func(i int, err error) {
		perr.Failed = append(perr.Failed, transport.MessageError{Index: i, UUID: msgs[i].UUID, Err: err})
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		nm, err := marshal(topic, m)
		if err != nil {
			fail(i, err)
			continue
		}
		stall := time.Until(deadline)
		if stall <= 0 {
			fail(i, fmt.Errorf("no room to publish within publish_timeout %s", p.timeout))
			continue
		}
		// No Nats-Expected-Stream header (one more header for the server to
		// parse per message): the stream of each PubAck is checked below.
		f, err := p.js.PublishMsgAsync(nm, jetstream.WithStallWait(stall))
		if err != nil {
			if errors.Is(err, nats.ErrReconnectBufExceeded) {
				err = fmt.Errorf("not connected to NATS (reconnecting): %w", err)
			}
			fail(i, err)
			continue
		}
		futures[i] = f
	}
	timer := getTimer(time.Until(deadline))
	defer putTimer(timer)
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Stream != stream {
				// Another stream holds the subject (ours was deleted and
				// someone else's took it over): not where it belongs.
				p.known.Delete(topic)
				fail(i, fmt.Errorf("stored by stream %s instead of %s", ack.Stream, stream))
			}
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				p.known.Delete(topic) // stream gone: check it again next time
			}
			fail(i, err)
		case <-timer.C:
			timer.Reset(0) // every later wait fails at once too
			fail(i, fmt.Errorf("no ack within publish_timeout %s: %w", p.timeout, context.DeadlineExceeded))
		case <-p.closed:
			fail(i, fmt.Errorf("connection closed before the ack arrived: %w", ErrPublisherClosed))
		}
	}
	if len(perr.Failed) > 0 {
		return perr
	}
	return nil
}

// Close closes the publisher's connection; Publish calls waiting for acks
// return an error. The transport's shared Publisher ignores Close (the
// transport closes it).
func (p *Publisher) Close() error {
	p.markClosed()
	p.nc.Close()
	return nil
}

// sharedPublisher is what Transport.Publisher hands out: closing it is a
// no-op, since one caller closing the process-wide publisher would break
// every other.
type sharedPublisher struct{ *Publisher }

func (sharedPublisher) Close() error { return nil }

// timers are reused across Publish calls: one per call is otherwise a
// timer allocation plus a context on every event's hand-off.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop() // since Go 1.23 Stop also empties the channel
	timers.Put(t)
}
