package routers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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

// DLQKind says whose dead-letter queue a DLQ is.
type DLQKind string

// The kinds of dead-letter queue busbar keeps on its transport.
const (
	// KindTarget: events a (rule, target) could not deliver (DLQTopic).
	KindTarget DLQKind = "target"
	// KindBus: events a bus's router could not route (BusDLQTopic).
	KindBus DLQKind = "bus"
	// KindPipe: records a pipe could not transform or deliver
	// (pipes.DLQTopic).
	KindPipe DLQKind = "pipe"
	// KindSource: broker records a source could not turn into events
	// (engine.SourceDLQTopic).
	KindSource DLQKind = "source"
)

// DLQ names one dead-letter queue: a target's (Bus, Rule, Target), a bus's
// (Bus), a pipe's (Pipe) or a source's (Source).
type DLQ struct {
	Kind   DLQKind `json:"kind"`
	Bus    string  `json:"bus,omitempty"`
	Rule   string  `json:"rule,omitempty"`
	Target string  `json:"target,omitempty"`
	Pipe   string  `json:"pipe,omitempty"`
	Source string  `json:"source,omitempty"`
}

// DLQ returns the dead-letter queue of q.
func (q QueueRef) DLQ() DLQ { return DLQ{Kind: KindTarget, Bus: q.Bus, Rule: q.Rule, Target: q.Target} }

// BusDLQ is the dead-letter queue of a bus: the events its router could not
// route.
func BusDLQ(bus string) DLQ { return DLQ{Kind: KindBus, Bus: bus} }

// PipeDLQ is the dead-letter queue of a pipe.
func PipeDLQ(pipe string) DLQ { return DLQ{Kind: KindPipe, Pipe: pipe} }

// SourceDLQ is the dead-letter queue of a (Kafka or Pulsar) source.
func SourceDLQ(source string) DLQ { return DLQ{Kind: KindSource, Source: source} }

// Topic is the transport topic of the queue.
func (d DLQ) Topic() string {
	switch d.Kind {
	case KindBus:
		return BusDLQTopic(d.Bus)
	case KindPipe:
		return PipeDLQTopic(d.Pipe)
	case KindSource:
		return SourceDLQTopic(d.Source)
	default:
		return DLQTopic(d.Bus, d.Rule, d.Target)
	}
}

// Name is the queue's owner as people write it: bus/rule/target for a
// target, else the bus, pipe or source name.
func (d DLQ) Name() string {
	switch d.Kind {
	case KindBus:
		return d.Bus
	case KindPipe:
		return d.Pipe
	case KindSource:
		return d.Source
	default:
		return d.Bus + "/" + d.Rule + "/" + d.Target
	}
}

// String is the queue for messages: "pipe \"clicks\"".
func (d DLQ) String() string {
	if d.Kind == KindTarget || d.Kind == "" {
		return fmt.Sprintf("target %q in rule %q of bus %q", d.Target, d.Rule, d.Bus)
	}
	return fmt.Sprintf("%s %q", d.Kind, d.Name())
}

// ErrNotRedrivable is wrapped by Redrivable for queues whose records have
// no queue to go back to.
var ErrNotRedrivable = errors.New("cannot be redriven")

// Redrivable says whether the records of d can be put back for delivery
// with Redrive — only a target's can — and, when not, why and what to do
// instead.
func (d DLQ) Redrivable() error {
	switch d.Kind {
	case KindBus:
		return fmt.Errorf("the dead letters of bus %q %w: they are events its router could not read (not JSON), and putting them back on the bus would fail the same way; read them with show, fix the producer, and publish corrected events to the bus again", d.Bus, ErrNotRedrivable)
	case KindPipe:
		return fmt.Errorf("the dead letters of pipe %q %w: a pipe reads its source topic directly and has no queue of its own to put records back on; read them with show, fix the cause (target, transform or filter), then produce the records to the pipe's source topic again", d.Pipe, ErrNotRedrivable)
	case KindSource:
		return fmt.Errorf("the dead letters of source %q %w: they are broker records that are not events, and a source has no queue to put them back on; read them with show, fix the producer, and produce corrected records to the source's topic again", d.Source, ErrNotRedrivable)
	}
	return nil
}

// DeadLetter is one record of a dead-letter queue. Which fields are set
// depends on the queue's kind: a target's records name the bus, rule and
// target; a pipe's the pipe and the Kafka record it came from; a source's
// the source and the broker record. Metadata (Show only) holds every entry
// the record carries that has no field of its own, such as kafka-header-*.
type DeadLetter struct {
	Seq          uint64    `json:"seq"`
	StoredAt     time.Time `json:"stored_at"`
	EventID      string    `json:"event_id,omitempty"`
	Bus          string    `json:"bus,omitempty"`
	Rule         string    `json:"rule,omitempty"`
	Target       string    `json:"target,omitempty"`
	Pipe         string    `json:"pipe,omitempty"`
	Source       string    `json:"source,omitempty"`
	Reason       string    `json:"reason"`
	Error        string    `json:"error"`
	Status       int       `json:"status,omitempty"`
	Attempts     int       `json:"attempts"`
	FirstAttempt string    `json:"first_attempt,omitempty"`
	LastAttempt  string    `json:"last_attempt,omitempty"`
	FailedAt     string    `json:"failed_at,omitempty"`
	// Origin is the broker record a pipe's or source's dead letter was read
	// from: "kafka TOPIC[PARTITION]@OFFSET" or "pulsar TOPIC MESSAGE-ID".
	Origin   string            `json:"origin,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Event is the payload: the event (or record value) as JSON when it is
	// JSON, else as a JSON string; EventBase64 holds it instead when it is
	// not UTF-8 text.
	Event       json.RawMessage `json:"event,omitempty"`
	EventBase64 string          `json:"event_base64,omitempty"`
}

// DeadLetters reads dead-letter queues — targets', buses', pipes' and
// sources' — and redrives targets'. It needs a transport that implements
// transport.Inspector.
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

// Exists reports whether q is on the transport. busbar creates the
// dead-letter queue of every bus, pipe and source when it starts, and the
// queue outlives its owner's removal from the config (with its records).
func (d *DeadLetters) Exists(ctx context.Context, q DLQ) (bool, error) {
	_, err := d.insp.TopicStats(ctx, q.Topic())
	if errors.Is(err, transport.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Count returns how many dead letters q holds.
func (d *DeadLetters) Count(ctx context.Context, q DLQ) (uint64, error) {
	st, err := d.insp.TopicStats(ctx, q.Topic())
	if errors.Is(err, transport.ErrNotFound) {
		return 0, nil
	}
	return st.Messages, err
}

// List returns up to limit dead letters of q from sequence from, without
// their events, and the sequence to continue from (0 when done).
func (d *DeadLetters) List(ctx context.Context, q DLQ, from uint64, limit int) ([]DeadLetter, uint64, error) {
	page, err := d.browse(ctx, q.Topic(), from, limit)
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

// browse is Inspector.Browse of a topic that may be missing: no records.
// (An empty topic is an empty page: Inspector.Browse says so.)
func (d *DeadLetters) browse(ctx context.Context, topic string, from uint64, limit int) ([]transport.StoredMessage, error) {
	page, err := d.insp.Browse(ctx, topic, from, limit)
	if errors.Is(err, transport.ErrNotFound) {
		return nil, nil
	}
	return page, err
}

// Show returns one dead letter with its event and all its metadata.
func (d *DeadLetters) Show(ctx context.Context, q DLQ, seq uint64) (DeadLetter, error) {
	m, err := d.insp.Get(ctx, q.Topic(), seq)
	if err != nil {
		return DeadLetter{}, err
	}
	return record(m, true), nil
}

// Metadata entries of pipes' and sources' dead letters (pipeline/pipes,
// pipeline/engine).
const (
	metaPipe            = "busbar-pipe"
	metaSource          = "busbar-source"
	metaKafkaTopic      = "kafka-topic"
	metaKafkaPartition  = "kafka-partition"
	metaKafkaOffset     = "kafka-offset"
	metaPulsarTopic     = "pulsar-topic"
	metaPulsarMessageID = "pulsar-message-id"
)

// fielded are the metadata entries a DeadLetter has a field for.
var fielded = map[string]bool{
	pipeline.MetaEventID: true, pipeline.MetaBus: true, pipeline.MetaRule: true, pipeline.MetaTarget: true,
	pipeline.MetaReason: true, pipeline.MetaError: true, pipeline.MetaStatus: true, pipeline.MetaAttempts: true,
	pipeline.MetaFirstAttempt: true, pipeline.MetaLastAttempt: true, pipeline.MetaFailedAt: true,
	metaPipe: true, metaSource: true,
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
		Pipe:         md.Get(metaPipe),
		Source:       md.Get(metaSource),
		Reason:       md.Get(pipeline.MetaReason),
		Error:        md.Get(pipeline.MetaError),
		FirstAttempt: md.Get(pipeline.MetaFirstAttempt),
		LastAttempt:  md.Get(pipeline.MetaLastAttempt),
		FailedAt:     md.Get(pipeline.MetaFailedAt),
	}
	r.Status, _ = strconv.Atoi(md.Get(pipeline.MetaStatus))
	r.Attempts, _ = strconv.Atoi(md.Get(pipeline.MetaAttempts))
	switch {
	case md.Get(metaKafkaTopic) != "":
		r.Origin = fmt.Sprintf("kafka %s[%s]@%s", md.Get(metaKafkaTopic), md.Get(metaKafkaPartition), md.Get(metaKafkaOffset))
	case md.Get(metaPulsarTopic) != "":
		r.Origin = "pulsar " + md.Get(metaPulsarTopic) + " " + md.Get(metaPulsarMessageID)
	}
	if withEvent {
		for k, v := range md {
			if !fielded[k] {
				if r.Metadata == nil {
					r.Metadata = map[string]string{}
				}
				r.Metadata[k] = v
			}
		}
		p := m.Message.Payload
		switch {
		case json.Valid(p):
			r.Event = json.RawMessage(p)
		case utf8.Valid(p):
			r.Event = jsonString(p)
		default:
			r.EventBase64 = base64.StdEncoding.EncodeToString(p)
		}
	}
	return r
}

// jsonString is p as a JSON string, with <, > and & as they are.
func jsonString(p []byte) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(p))
	return bytes.TrimRight(b.Bytes(), "\n")
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
		page, err := d.browse(ctx, dlq, from, 500)
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
