package routers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport"
)

// MetaRedrivenFrom and MetaRedrivenAt mark an event put back on its queue
// by a redrive; the dispatcher measures the event's age from MetaRedrivenAt.
const (
	MetaRedrivenFrom = "busbar-redriven-from"
	MetaRedrivenAt   = "busbar-redriven-at"
)

// QueueRef names the queue (and dead-letter queue) of one (rule, target).
type QueueRef struct {
	Bus    string `json:"bus"`
	Rule   string `json:"rule"`
	Target string `json:"target"`
}

// DeadLetter is one record of a dead-letter queue.
type DeadLetter struct {
	Seq          uint64          `json:"seq"`
	StoredAt     time.Time       `json:"stored_at"`
	EventID      string          `json:"event_id"`
	Bus          string          `json:"bus"`
	Rule         string          `json:"rule"`
	Target       string          `json:"target"`
	Reason       string          `json:"reason"`
	Error        string          `json:"error"`
	Status       int             `json:"status,omitempty"`
	Attempts     int             `json:"attempts"`
	FirstAttempt string          `json:"first_attempt,omitempty"`
	LastAttempt  string          `json:"last_attempt,omitempty"`
	Event        json.RawMessage `json:"event,omitempty"`
}

// DeadLetters reads and redrives the dead-letter queues of targets. It needs
// a transport that implements transport.Inspector.
type DeadLetters struct {
	insp transport.Inspector
	pub  message.Publisher
}

// ErrNoInspector is returned when the transport cannot browse its topics.
var ErrNoInspector = errors.New("this transport cannot list or redrive dead letters")

// NewDeadLetters returns the dead-letter tooling over tr.
func NewDeadLetters(tr transport.Transport) (*DeadLetters, error) {
	insp, ok := tr.(transport.Inspector)
	if !ok {
		return nil, ErrNoInspector
	}
	return &DeadLetters{insp: insp, pub: tr.Publisher()}, nil
}

// Count returns how many dead letters q holds.
func (d *DeadLetters) Count(ctx context.Context, q QueueRef) (uint64, error) {
	st, err := d.insp.TopicStats(ctx, DLQTopic(q.Bus, q.Rule, q.Target))
	if errors.Is(err, transport.ErrNotFound) {
		return 0, nil
	}
	return st.Messages, err
}

// List returns up to limit dead letters of q from sequence from, without
// their events, and the sequence to continue from (0 when done).
func (d *DeadLetters) List(ctx context.Context, q QueueRef, from uint64, limit int) ([]DeadLetter, uint64, error) {
	page, err := d.insp.Browse(ctx, DLQTopic(q.Bus, q.Rule, q.Target), from, limit)
	if errors.Is(err, transport.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	out := make([]DeadLetter, len(page))
	for i, m := range page {
		out[i] = record(m, false)
	}
	var next uint64
	if len(page) == limit && limit > 0 {
		next = page[len(page)-1].Seq + 1
	}
	return out, next, nil
}

// Show returns one dead letter with its event.
func (d *DeadLetters) Show(ctx context.Context, q QueueRef, seq uint64) (DeadLetter, error) {
	m, err := d.insp.Get(ctx, DLQTopic(q.Bus, q.Rule, q.Target), seq)
	if err != nil {
		return DeadLetter{}, err
	}
	return record(m, true), nil
}

func record(m transport.StoredMessage, withEvent bool) DeadLetter {
	md := m.Message.Metadata
	r := DeadLetter{
		Seq:          m.Seq,
		StoredAt:     m.Time,
		EventID:      md.Get(pipeline.MetaEventID),
		Bus:          md.Get(pipeline.MetaBus),
		Rule:         md.Get(pipeline.MetaRule),
		Target:       md.Get(pipeline.MetaTarget),
		Reason:       md.Get(pipeline.MetaReason),
		Error:        md.Get(pipeline.MetaError),
		FirstAttempt: md.Get(pipeline.MetaFirstAttempt),
		LastAttempt:  md.Get(pipeline.MetaLastAttempt),
	}
	r.Status, _ = strconv.Atoi(md.Get(pipeline.MetaStatus))
	r.Attempts, _ = strconv.Atoi(md.Get(pipeline.MetaAttempts))
	if withEvent {
		if json.Valid(m.Message.Payload) {
			r.Event = json.RawMessage(m.Message.Payload)
		} else {
			r.Event, _ = json.Marshal(string(m.Message.Payload))
		}
	}
	return r
}

// RedriveOptions select what a redrive puts back.
type RedriveOptions struct {
	// Since and Until bound the time the records were dead-lettered
	// (Since ≤ t < Until); zero means unbounded.
	Since, Until time.Time
	// DryRun counts what would be redriven and changes nothing.
	DryRun bool
	// Limit stops after this many records (0 = all); callers page with it to
	// show progress.
	Limit int
}

// RedriveResult says what a redrive did.
type RedriveResult struct {
	Matched   int `json:"matched"`   // records in the window
	Redriven  int `json:"redriven"`  // put back on the target's queue
	Remaining int `json:"remaining"` // records left in the DLQ after this call
}

// Redrive puts dead letters of q back on q's queue, oldest first: each is
// published to the queue, then removed from the DLQ, so a record is
// redriven once however often Redrive runs (a crash between the two steps
// can deliver it twice: at-least-once). Its age restarts at the redrive.
func (d *DeadLetters) Redrive(ctx context.Context, q QueueRef, o RedriveOptions) (RedriveResult, error) {
	dlq, queue := DLQTopic(q.Bus, q.Rule, q.Target), QueueTopic(q.Bus, q.Rule, q.Target)
	var res RedriveResult
	var from uint64
	for {
		page, err := d.insp.Browse(ctx, dlq, from, 500)
		if errors.Is(err, transport.ErrNotFound) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		for _, m := range page {
			from = m.Seq + 1
			if !inWindow(m, o) {
				continue
			}
			if o.Limit > 0 && res.Matched >= o.Limit {
				return d.remaining(ctx, dlq, res)
			}
			res.Matched++
			if o.DryRun {
				continue
			}
			if err := d.pub.Publish(queue, redriven(m)); err != nil {
				return res, fmt.Errorf("redrive of record %d: %w", m.Seq, err)
			}
			if err := d.insp.Delete(ctx, dlq, m.Seq); err != nil && !errors.Is(err, transport.ErrNotFound) {
				return res, fmt.Errorf("record %d was redriven but is still in the dead-letter queue: %w", m.Seq, err)
			}
			res.Redriven++
		}
		if len(page) < 500 {
			return d.remaining(ctx, dlq, res)
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
}

func (d *DeadLetters) remaining(ctx context.Context, dlq string, res RedriveResult) (RedriveResult, error) {
	st, err := d.insp.TopicStats(ctx, dlq)
	if err != nil && !errors.Is(err, transport.ErrNotFound) {
		return res, err
	}
	res.Remaining = int(st.Messages)
	return res, nil
}

func inWindow(m transport.StoredMessage, o RedriveOptions) bool {
	t := m.Time
	if ft, err := time.Parse(time.RFC3339Nano, m.Message.Metadata.Get(pipeline.MetaFailedAt)); err == nil {
		t = ft
	}
	return (o.Since.IsZero() || !t.Before(o.Since)) && (o.Until.IsZero() || t.Before(o.Until))
}

// redriven is the queue message made from a dead letter: the event and its
// identity, without the failure details.
func redriven(m transport.StoredMessage) *message.Message {
	c := message.NewMessage(watermill.NewULID(), m.Message.Payload)
	for k, v := range m.Message.Metadata {
		switch k {
		case pipeline.MetaReason, pipeline.MetaError, pipeline.MetaStatus, pipeline.MetaAttempts,
			pipeline.MetaFirstAttempt, pipeline.MetaLastAttempt, pipeline.MetaFailedAt:
		default:
			c.Metadata[k] = v
		}
	}
	c.Metadata.Set(MetaRedrivenFrom, strconv.FormatUint(m.Seq, 10))
	c.Metadata.Set(MetaRedrivenAt, time.Now().UTC().Format(time.RFC3339Nano))
	return c
}
