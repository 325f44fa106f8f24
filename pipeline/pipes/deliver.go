package pipes

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/routers"
	"github.com/busbar/busbar/sinks"
	kafkasrc "github.com/busbar/busbar/sources/kafka"
)

// item is one event on its way to the target, with the record it came
// from and the chunk that record settles.
type item struct {
	d    sinks.Delivery
	ch   *kafkasrc.Chunk
	rec  *kgo.Record
	size int
}

// workLoop turns chunks into events, skips those the pattern does not
// match, transforms the rest and hands them to the accumulator.
func (p *Pipe) workLoop() {
	defer p.workers.Done()
	var dst []string
	for ch := range p.work {
		dst = p.process(ch, dst)
	}
}

func (p *Pipe) process(ch *kafkasrc.Chunk, dst []string) []string {
	now := time.Now()
	items := make([]item, 0, len(ch.Records))
	var dead []letter
	skipped := 0
	for _, r := range ch.Records {
		rec, err := p.conv.Convert(r, now)
		if err != nil {
			dead = append(dead, letter{ch: ch, rec: r, payload: r.Value, reason: "invalid-record", err: err, headers: true})
			continue
		}
		if p.matcher != nil {
			dst, err = p.matcher.Match(rec.Event, dst[:0])
			if err != nil {
				dead = append(dead, letter{ch: ch, rec: r, id: rec.ID, payload: rec.Event, reason: routers.ReasonUnroutable, err: err})
				continue
			}
			if len(dst) == 0 {
				skipped++
				continue
			}
		}
		d := sinks.Delivery{EventID: rec.ID, Event: rec.Event}
		if p.tf != nil {
			body, ctype, err := p.tf.Apply(rec.Event, p.meta)
			if err != nil {
				dead = append(dead, letter{ch: ch, rec: r, id: rec.ID, payload: rec.Event, reason: routers.ReasonTransform, err: err})
				continue
			}
			if p.tf.Whole() {
				d.Event = body // the masked CloudEvent
			} else {
				d.Body, d.ContentType = body, ctype
			}
		}
		items = append(items, item{d: d, ch: ch, rec: r, size: len(d.Event) + len(d.Body)})
	}
	if skipped > 0 {
		p.skipped.Add(int64(skipped))
		ch.Settle(skipped)
	}
	if len(dead) > 0 {
		p.dead.Add(1)
		go func() {
			defer p.dead.Done()
			p.storeDead(dead)
		}()
	}
	if len(items) > 0 {
		p.acc.add(items)
	}
	return dst
}

// accumulator gathers items into batches cut at max_rows or max_bytes, or
// max_wait after a batch's first item, and queues them for the senders.
type accumulator struct {
	l      limits
	mu     sync.Mutex
	cond   *sync.Cond
	open   []item
	bytes  int
	gen    int // counts cuts, so that a stale timer cuts nothing
	timer  *time.Timer
	queue  [][]item
	closed bool
}

func newAccumulator(l limits) *accumulator {
	a := &accumulator{l: l}
	a.cond = sync.NewCond(&a.mu)
	return a
}

func (a *accumulator) add(items []item) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, it := range items {
		if len(a.open) == 0 {
			gen := a.gen
			a.timer = time.AfterFunc(a.l.maxWait, func() { a.cutIf(gen) })
		}
		a.open = append(a.open, it)
		a.bytes += it.size
		if len(a.open) >= a.l.maxRows || a.bytes >= a.l.maxBytes {
			a.cutLocked()
		}
	}
}

func (a *accumulator) cutIf(gen int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen == gen {
		a.cutLocked()
	}
}

func (a *accumulator) cutLocked() {
	if len(a.open) == 0 {
		return
	}
	a.timer.Stop()
	a.gen++
	a.queue = append(a.queue, a.open)
	a.open, a.bytes = nil, 0
	a.cond.Signal()
}

// flush cuts the open batch now.
func (a *accumulator) flush() {
	a.mu.Lock()
	a.cutLocked()
	a.mu.Unlock()
}

// next waits for a cut batch; false once closed.
func (a *accumulator) next() ([]item, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.queue) == 0 && !a.closed {
		a.cond.Wait()
	}
	if a.closed {
		return nil, false // what is queued is read again at the next start
	}
	b := a.queue[0]
	a.queue[0] = nil
	a.queue = a.queue[1:]
	return b, true
}

func (a *accumulator) close() {
	a.mu.Lock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.cond.Broadcast()
	a.mu.Unlock()
}

// sendLoop delivers cut batches, one at a time; max_in_flight of them run.
func (p *Pipe) sendLoop() {
	defer p.senders.Done()
	for {
		b, ok := p.acc.next()
		if !ok {
			return
		}
		p.deliver(b)
	}
}

// deliver sends a batch until every item is delivered or dead-lettered;
// items that failed with a retryable error are sent again, alone, after a
// backoff, however long it takes. It gives up only when the pipe stops (or
// an item's partition was revoked): those records are read again.
func (p *Pipe) deliver(items []item) {
	for attempt := 1; ; attempt++ {
		live := items[:0]
		for _, it := range items {
			if it.ch.Context().Err() == nil { // else the partition's next owner reads it again
				live = append(live, it)
			}
		}
		items = live
		if len(items) == 0 {
			return
		}
		errs := p.send(items)
		var retry []item
		var dead []letter
		var lastErr error
		var done settler
		for i, err := range errs {
			switch {
			case err == nil:
				done.add(items[i].ch)
			case sinks.IsPermanent(err):
				it := items[i]
				dead = append(dead, letter{ch: it.ch, rec: it.rec, id: it.d.EventID, payload: it.d.Event, reason: routers.ReasonPermanent, err: err, attempts: attempt})
			default:
				retry = append(retry, items[i])
				lastErr = err
			}
		}
		done.flush()
		p.delivered.Add(int64(len(items) - len(retry) - len(dead)))
		if len(dead) > 0 {
			p.storeDead(dead)
		}
		if len(retry) == 0 {
			return
		}
		p.retried.Add(int64(len(retry)))
		wait := p.backoff(attempt)
		if after, ok := sinks.RetryAfter(lastErr); ok && after > wait {
			wait = after
		}
		select {
		case <-p.stopping:
			return
		default:
		}
		p.log.Warn("delivery failed; retrying, the source waits", "events", len(retry), "attempt", attempt, "retry_in", wait, "error", lastErr)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.stopping:
			t.Stop()
			return
		}
		items = retry
	}
}

// errSinkAnswer is returned for every item when a sink answers a batch
// with the wrong number of results.
var errSinkAnswer = errors.New("the sink answered a batch with the wrong number of results")

// send hands items to the sink: in one DeliverBatch call, or in up to
// concurrency Deliver calls at once.
func (p *Pipe) send(items []item) []error {
	ds := make([]sinks.Delivery, len(items))
	for i := range items {
		ds[i] = items[i].d
	}
	if p.batchIn != nil {
		errs := p.batchIn.DeliverBatch(p.ctx, ds)
		if len(errs) != len(ds) {
			errs = make([]error, len(ds))
			for i := range errs {
				errs[i] = errSinkAnswer
			}
		}
		return errs
	}
	errs := make([]error, len(ds))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(p.conc, len(ds)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ds) {
					return
				}
				errs[i] = p.sink.Deliver(p.ctx, ds[i])
			}
		})
	}
	wg.Wait()
	return errs
}

// settler settles runs of items of the same chunk with one call.
type settler struct {
	ch *kafkasrc.Chunk
	n  int
}

func (s *settler) add(ch *kafkasrc.Chunk) {
	if ch != s.ch {
		s.flush()
		s.ch = ch
	}
	s.n++
}

func (s *settler) flush() {
	if s.ch != nil && s.n > 0 {
		s.ch.Settle(s.n)
	}
	s.ch, s.n = nil, 0
}

// letter is one record for the pipe's dead-letter queue.
type letter struct {
	ch       *kafkasrc.Chunk
	rec      *kgo.Record
	id       string // the event's id; "" for records that are not events
	payload  []byte // the record value, or the event
	reason   string
	err      error
	attempts int
	headers  bool // copy the record's headers (records that are not events)
}

// storeDead stores letters on the dead-letter queue, retrying until it
// succeeds or the pipe stops, and settles their records once stored.
func (p *Pipe) storeDead(letters []letter) {
	msgs := make([]*message.Message, len(letters))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i, l := range letters {
		msgs[i] = p.deadMessage(l, now)
	}
	topic := DLQTopic(p.name)
	for attempt := 1; ; attempt++ {
		err := p.dlq.Publish(topic, msgs...)
		if err == nil {
			break
		}
		wait := backoff(100*time.Millisecond, 5*time.Second, attempt)
		p.log.Error("storing dead letters failed; retrying, the source waits", "dlq", topic, "count", len(msgs), "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.stopping:
			t.Stop()
			return // not settled: read again at the next start
		}
	}
	p.deadLettered.Add(int64(len(letters)))
	p.log.Warn("records dead-lettered", "dlq", topic, "count", len(letters), "first_reason", letters[0].reason, "first_error", letters[0].err)
	var s settler
	for _, l := range letters {
		s.add(l.ch)
	}
	s.flush()
}

// deadMessage is a letter as a transport message: the payload as it is,
// where it came from and why in metadata (as a source's dead letters).
func (p *Pipe) deadMessage(l letter, now string) *message.Message {
	m := message.NewMessage(watermill.NewULID(), l.payload)
	r := l.rec
	if l.headers {
		for _, h := range r.Headers {
			m.Metadata.Set("kafka-header-"+h.Key, string(h.Value))
		}
	}
	if l.id != "" {
		m.Metadata.Set(pipeline.MetaEventID, l.id)
	}
	m.Metadata.Set(pipeline.MetaReason, l.reason)
	msg := l.err.Error()
	if len(msg) > 2048 {
		msg = msg[:2048] + "…"
	}
	m.Metadata.Set(pipeline.MetaError, msg)
	if l.attempts > 0 {
		m.Metadata.Set(pipeline.MetaAttempts, strconv.Itoa(l.attempts))
	}
	if st := sinks.StatusOf(l.err); st != 0 {
		m.Metadata.Set(pipeline.MetaStatus, strconv.Itoa(st))
	}
	m.Metadata.Set(pipeline.MetaFailedAt, now)
	m.Metadata.Set("busbar-pipe", p.name)
	m.Metadata.Set("kafka-topic", r.Topic)
	m.Metadata.Set("kafka-partition", strconv.Itoa(int(r.Partition)))
	m.Metadata.Set("kafka-offset", strconv.FormatInt(r.Offset, 10))
	if len(r.Key) > 0 {
		m.Metadata.Set("kafka-key", string(r.Key))
	}
	return m
}

// backoff is a random wait in [ceil/2, ceil], ceil = min(maxWait,
// initial·2^(n-1)).
func backoff(initial, maxWait time.Duration, n int) time.Duration {
	ceil := initial
	for i := 1; i < n && ceil < maxWait; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxWait)
	half := ceil / 2
	return half + rand.N(ceil-half+1)
}
