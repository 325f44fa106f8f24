package routers

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busbar/busbar/filters"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/sinks"
)

// RuleTargets is one rule of a bus with the queue topics of its targets.
type RuleTargets struct {
	Rule    string
	Pattern []byte
	Filter  string
	// Targets are the target ids, each delivered through its own queue.
	Targets []string
}

// Table is the compiled routing of one bus: its matcher and where each
// matched rule's copies go. A Table never changes; a config change builds a
// new one and swaps it in.
type Table struct {
	bus     string
	matcher filters.Matcher
	queues  map[string][]queue // rule -> its targets' queues
}

// queue is the durable queue of one (rule, target).
type queue struct {
	topic, rule, target string
}

// NewTable compiles the enabled rules of a bus.
func NewTable(bus string, rules []RuleTargets) (*Table, error) {
	frules := make([]filters.Rule, 0, len(rules))
	t := &Table{bus: bus, queues: make(map[string][]queue, len(rules))}
	for _, r := range rules {
		frules = append(frules, filters.Rule{Name: r.Rule, Pattern: r.Pattern, Filter: r.Filter})
		for _, tgt := range r.Targets {
			t.queues[r.Rule] = append(t.queues[r.Rule], queue{topic: QueueTopic(bus, r.Rule, tgt), rule: r.Rule, target: tgt})
		}
	}
	m, err := filters.NewMatcher(frules)
	if err != nil {
		return nil, fmt.Errorf("bus %q: %w", bus, err)
	}
	t.matcher = m
	return t, nil
}

// BusRouter routes the events of one bus. Its Handle is a watermill
// NoPublishHandlerFunc: it returns only after every matched target queue has
// durably accepted its copy, so the router acknowledges the bus message only
// then; an error makes the router nack and the bus redeliver the event.
type BusRouter struct {
	bus   string
	pub   message.Publisher
	log   *slog.Logger
	table atomic.Pointer[Table]
	names sync.Pool // *[]string scratch for matched rule names
}

// NewBusRouter returns the router of bus, routing by table.
func NewBusRouter(bus string, table *Table, pub message.Publisher, log *slog.Logger) *BusRouter {
	b := &BusRouter{bus: bus, pub: pub, log: log.With("bus", bus)}
	b.table.Store(table)
	b.names.New = func() any { s := make([]string, 0, 8); return &s }
	return b
}

// Swap replaces the routing table; events already being routed finish with
// the table they started with.
func (b *BusRouter) Swap(t *Table) { b.table.Store(t) }

// Handle routes one bus message.
func (b *BusRouter) Handle(msg *message.Message) error {
	t := b.table.Load()
	np := b.names.Get().(*[]string)
	defer func() { *np = (*np)[:0]; b.names.Put(np) }()
	id := msg.Metadata.Get(pipeline.MetaEventID)

	matched, err := t.matcher.Match(msg.Payload, *np)
	*np = matched
	if err != nil {
		// Sources validate events, so this is a poison message: park it with
		// its reason rather than block the bus.
		b.log.Error("event cannot be routed; moved to the bus dead-letter queue", "event_id", id, "error", err)
		dead := deadLetter(msg, failure{reason: ReasonUnroutable, err: err})
		return b.pub.Publish(BusDLQTopic(b.bus), dead)
	}
	var queues []queue
	for _, rule := range matched {
		queues = append(queues, t.queues[rule]...)
	}
	if len(queues) == 0 {
		b.log.Debug("event matched no rule", "event_id", id)
		return nil
	}
	b.log.Debug("event matched", "event_id", id, "rules", matched)
	return b.handOff(msg, queues)
}

// handOff publishes a copy of msg to each queue, concurrently when there are
// several, and fails if any hand-off failed.
func (b *BusRouter) handOff(msg *message.Message, queues []queue) error {
	if len(queues) == 1 {
		return b.publishCopy(msg, queues[0])
	}
	errs := make([]error, len(queues))
	var wg sync.WaitGroup
	for i, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.publishCopy(msg, q)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *BusRouter) publishCopy(msg *message.Message, q queue) error {
	c := message.NewMessage(watermill.NewULID(), msg.Payload)
	for k, v := range msg.Metadata {
		c.Metadata[k] = v
	}
	c.Metadata.Set(pipeline.MetaRule, q.rule)
	c.Metadata.Set(pipeline.MetaTarget, q.target)
	if err := b.pub.Publish(q.topic, c); err != nil {
		return fmt.Errorf("hand-off to %s: %w", q.topic, err)
	}
	return nil
}

// Reasons an event is dead-lettered (pipeline.MetaReason).
const (
	ReasonPermanent  = "permanent-failure"
	ReasonExhausted  = "retries-exhausted"
	ReasonMaxAge     = "max-event-age"
	ReasonTransform  = "transform-failed"
	ReasonUnroutable = "unroutable"
)

// failure is what a dead-letter record says about why delivery stopped.
type failure struct {
	reason      string
	err         error
	attempts    int
	first, last time.Time
}

// deadLetter copies msg for a dead-letter queue with why it is there.
func deadLetter(msg *message.Message, f failure) *message.Message {
	d := message.NewMessage(watermill.NewULID(), msg.Payload)
	for k, v := range msg.Metadata {
		d.Metadata[k] = v
	}
	d.Metadata.Set(pipeline.MetaReason, f.reason)
	d.Metadata.Set(pipeline.MetaError, truncate(f.err.Error(), 2048))
	d.Metadata.Set(pipeline.MetaAttempts, fmt.Sprint(f.attempts))
	if st := sinks.StatusOf(f.err); st != 0 {
		d.Metadata.Set(pipeline.MetaStatus, fmt.Sprint(st))
	}
	if !f.first.IsZero() {
		d.Metadata.Set(pipeline.MetaFirstAttempt, f.first.UTC().Format(time.RFC3339Nano))
		d.Metadata.Set(pipeline.MetaLastAttempt, f.last.UTC().Format(time.RFC3339Nano))
	}
	d.Metadata.Set(pipeline.MetaFailedAt, nowRFC3339())
	return d
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
