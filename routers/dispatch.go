package routers

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/filters/transform"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
)

// RetryPolicy bounds redelivery of one target: exponential backoff with full
// jitter between attempts.
type RetryPolicy struct {
	MaxAttempts     int           // counts the first attempt; ≥ 1
	MaxEventAge     time.Duration // give up this long after ingestion; 0 = never
	InitialInterval time.Duration // cap of the first backoff
	MaxInterval     time.Duration // cap of any backoff
}

// Backoff returns the wait before attempt n+1 after n failed attempts: a
// uniformly random duration in [0, min(MaxInterval, InitialInterval·2^(n-1))].
func (p RetryPolicy) Backoff(n int) time.Duration {
	ceil := p.InitialInterval
	for i := 1; i < n && ceil < p.MaxInterval; i++ {
		ceil *= 2
	}
	if ceil > p.MaxInterval {
		ceil = p.MaxInterval
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// ErrStopping is returned by a dispatcher that gave up an event because the
// process is shutting down; the event stays queued and is delivered later.
// It wraps context.Canceled so the watermill router does not log it as a
// handler failure.
var ErrStopping = fmt.Errorf("dispatcher stopping; event stays queued: %w", context.Canceled)

// Dispatcher delivers the events of one (rule, target) queue. Its Handle is
// a watermill NoPublishHandlerFunc: nil means delivered or dead-lettered
// (ack), an error means the event stays queued (nack).
type Dispatcher struct {
	sink      sinks.Sink
	transform *transform.Transformer
	meta      transform.Meta
	policy    RetryPolicy
	pub       message.Publisher
	dlqTopic  string
	log       *slog.Logger
	stopping  <-chan struct{}
}

// DispatcherConfig holds what a dispatcher needs.
type DispatcherConfig struct {
	Bus, Rule, Target string
	Sink              sinks.Sink
	Policy            RetryPolicy
	// Publisher receives dead letters.
	Publisher message.Publisher
	Logger    *slog.Logger
	// Stopping is closed when the process starts to shut down: waits between
	// attempts end at once and their events stay queued.
	Stopping <-chan struct{}
	// Transform reshapes each event before delivery; nil sends the event
	// as is.
	Transform *transform.Transformer
}

// NewDispatcher returns the dispatcher of one target queue.
func NewDispatcher(c DispatcherConfig) *Dispatcher {
	if c.Policy.MaxAttempts < 1 {
		c.Policy.MaxAttempts = 1
	}
	return &Dispatcher{
		transform: c.Transform,
		meta:      transform.Meta{Rule: c.Rule, Bus: c.Bus},
		sink:      c.Sink,
		policy:    c.Policy,
		pub:       c.Publisher,
		dlqTopic:  DLQTopic(c.Bus, c.Rule, c.Target),
		log:       c.Logger.With("bus", c.Bus, "rule", c.Rule, "target", c.Target),
		stopping:  c.Stopping,
	}
}

// Handle delivers one queued event.
func (d *Dispatcher) Handle(msg *message.Message) error {
	id := msg.Metadata.Get(pipeline.MetaEventID)
	del := sinks.Delivery{EventID: id, Bus: d.meta.Bus, Event: msg.Payload}
	f := failure{}
	if d.transform != nil {
		body, ctype, err := d.transform.Apply(msg.Payload, d.meta)
		if err != nil {
			f.reason, f.err = ReasonTransform, err
			return d.deadLetter(msg, id, f)
		}
		if d.transform.Whole() {
			del.Event = body // the masked CloudEvent, sent in the target's CloudEvents mode
		} else {
			del.Body, del.ContentType = body, ctype
		}
	}
	deadline := d.deadline(msg)
	for attempt := 1; ; attempt++ {
		select {
		case <-d.stopping:
			return ErrStopping
		default:
		}
		now := time.Now()
		if !deadline.IsZero() && now.After(deadline) && f.err != nil {
			f.reason = ReasonMaxAge
			f.err = fmt.Errorf("maximum event age %v exceeded; last error: %w", d.policy.MaxEventAge, f.err)
			return d.deadLetter(msg, id, f)
		}
		if f.first.IsZero() {
			f.first = now
		}
		f.last, f.attempts = now, attempt
		f.err = d.sink.Deliver(context.Background(), del)
		if f.err == nil {
			d.log.Debug("delivered", "event_id", id, "attempt", attempt)
			return nil
		}
		switch {
		case sinks.IsPermanent(f.err):
			f.reason = ReasonPermanent
			return d.deadLetter(msg, id, f)
		case attempt >= d.policy.MaxAttempts:
			f.reason = ReasonExhausted
			return d.deadLetter(msg, id, f)
		}
		wait := d.policy.Backoff(attempt)
		if after, ok := sinks.RetryAfter(f.err); ok && after > wait {
			wait = after
		}
		if !deadline.IsZero() {
			// Wake up at the deadline at the latest, to dead-letter on time.
			wait = min(wait, max(time.Until(deadline), 0)+time.Millisecond)
		}
		d.log.Warn("delivery failed; will retry", "event_id", id, "attempt", attempt, "retry_in", wait, "error", f.err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.stopping:
			t.Stop()
			return ErrStopping
		}
	}
}

// deadline is when the event gets too old to deliver, or zero.
func (d *Dispatcher) deadline(msg *message.Message) time.Time {
	if d.policy.MaxEventAge <= 0 {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(pipeline.MetaIngestTime))
	if err != nil {
		return time.Time{} // published by something other than a busbar source
	}
	if r, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetaRedrivenAt)); err == nil && r.After(t) {
		t = r // a redriven event gets a new lease of life
	}
	return t.Add(d.policy.MaxEventAge)
}

func (d *Dispatcher) deadLetter(msg *message.Message, id string, f failure) error {
	if err := d.pub.Publish(d.dlqTopic, deadLetter(msg, f)); err != nil {
		// Keep the event queued rather than lose it.
		d.log.Error("dead-lettering failed; event stays queued", "event_id", id, "error", err)
		return err
	}
	d.log.Error("event dead-lettered", "event_id", id, "reason", f.reason, "attempts", f.attempts, "error", f.err, "dlq", d.dlqTopic)
	return nil
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339Nano) }
