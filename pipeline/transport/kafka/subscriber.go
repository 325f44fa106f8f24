package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/pipeline/transport"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
)

// Subscriber is the franz-go subscriber of one busbar consumer group. Each
// Subscribe call runs its own Kafka client in the consumer group
// GroupID(group, topic).
type Subscriber struct {
	t     *Transport
	group string
	opts  transport.SubscribeOptions

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

// NewSubscriber returns a subscriber of group.
func (t *Transport) NewSubscriber(group string, opts transport.SubscribeOptions) *Subscriber {
	if opts.MaxInFlight < 1 {
		opts.MaxInFlight = 1
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	return &Subscriber{t: t, group: group, opts: opts, subs: map[*subscription]struct{}{}}
}

// Subscribe consumes topic as the subscriber's group. The channel closes
// after ctx is cancelled or the subscriber is closed, once handed-out
// messages were settled or DrainTimeout passed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("kafka subscriber is closed")
	}
	kt := s.t.cfg.Topic(topic)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.t.ensureTopic(cctx, kt)
	cancel()
	if err != nil {
		return nil, err
	}
	sub, err := s.newSubscription(topic, kt)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.close()
		return nil, errors.New("kafka subscriber is closed")
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			sub.close()
		case <-sub.stopping:
		}
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

// subscription is one topic consumed by one Kafka client in the group.
//
// Records are handed out in offset order per partition, at most MaxInFlight
// at a time. Each partition keeps a window of handed-out records in offset
// order; a record leaves the window when it and every record before it
// were acked, and the offset after it becomes committable. Commits happen
// every commit_interval, when partitions are revoked and on close, and only
// ever cover that acked prefix: a record not acked is never committed past.
type subscription struct {
	log          *slog.Logger
	cl           *kgo.Client
	topic, kt    string
	out          chan *message.Message
	maxInFlight  int
	windowCap    int // most handed-out-but-uncommitted records per partition
	nackDelay    time.Duration
	drainTimeout time.Duration
	commitEvery  time.Duration

	ctx    context.Context // cancelled on close: stops polling and the loops
	cancel context.CancelFunc

	mu       sync.Mutex
	cond     *sync.Cond
	parts    map[int32]*partition // the current assignment
	order    []int32              // round-robin order of parts
	next     int                  // round-robin position
	inflight int                  // handed out, neither acked nor given up
	pending  int                  // fetched, not yet handed out
	halt     bool                 // stop handing out (closing)

	stopping  chan struct{} // closed when close begins
	drained   chan struct{} // closed when the drain wait is over
	closeOnce sync.Once
	loops     sync.WaitGroup // poll, dispatch, commit loops
	senders   sync.WaitGroup // goroutines that may send on out
}

// partition is the state of one assigned partition. A new one is made at
// every assignment, so nothing of an earlier assignment (acks of records a
// revoked partition handed out) can leak into commits of a later one.
type partition struct {
	id       int32
	ctx      context.Context // cancelled on revoke, loss or close
	cancel   context.CancelFunc
	queue    []*kgo.Record // fetched, not handed out
	window   []*entry      // handed out, offset order, not yet committable
	inflight int
	commit   kgo.EpochOffset // committable offset (next to read); Offset < 0: none
	dirty    bool            // commit advanced since the last commit
}

type entry struct {
	rec   *kgo.Record
	acked bool
}

func (s *Subscriber) newSubscription(topic, kt string) (*subscription, error) {
	cfg := s.t.cfg
	sub := &subscription{
		log:          s.t.log.With("topic", kt, "group", s.group),
		topic:        topic,
		kt:           kt,
		out:          make(chan *message.Message),
		maxInFlight:  s.opts.MaxInFlight,
		windowCap:    max(64*s.opts.MaxInFlight, 4096),
		nackDelay:    s.opts.NackDelay,
		drainTimeout: s.opts.DrainTimeout,
		commitEvery:  cfg.commitInterval,
		parts:        map[int32]*partition{},
		stopping:     make(chan struct{}),
		drained:      make(chan struct{}),
	}
	sub.cond = sync.NewCond(&sub.mu)
	sub.ctx, sub.cancel = context.WithCancel(context.Background())
	opts, err := cfg.conn.Opts(s.t.log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group(s.group, topic)),
		kgo.ConsumeTopics(kt),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(cfg.sessionTimeout),
		kgo.RebalanceTimeout(cfg.rebalanceTime),
		kgo.HeartbeatInterval(min(3*time.Second, cfg.sessionTimeout/3)),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(sub.assigned),
		kgo.OnPartitionsRevoked(sub.revoked),
		kgo.OnPartitionsLost(sub.lost),
	)
	if sub.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka subscriber: %w", err)
	}
	sub.loops.Add(3)
	go sub.pollLoop()
	go sub.dispatchLoop()
	go sub.commitLoop()
	return sub, nil
}

// assigned makes fresh state for newly assigned partitions.
func (sub *subscription) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, p := range assigned[sub.kt] {
		if old := sub.parts[p]; old != nil {
			sub.dropLocked(old)
		}
		ctx, cancel := context.WithCancel(sub.ctx)
		sub.parts[p] = &partition{id: p, ctx: ctx, cancel: cancel, commit: kgo.EpochOffset{Offset: -1}}
		sub.order = append(sub.order, p)
	}
	sub.log.Debug("partitions assigned", "partitions", assigned[sub.kt])
	sub.cond.Broadcast()
}

// revoked stops handing out records of the revoked partitions, gives their
// in-flight records a short while to be acked, commits their acked prefix
// and forgets them. Records still in flight then are delivered again to the
// partitions' next owner (at-least-once).
func (sub *subscription) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	ps := revoked[sub.kt]
	if len(ps) == 0 {
		return
	}
	sub.mu.Lock()
	var mine []*partition
	for _, id := range ps {
		if p := sub.parts[id]; p != nil {
			sub.pending -= len(p.queue)
			p.queue = nil
			mine = append(mine, p)
		}
	}
	sub.mu.Unlock()
	wait := min(sub.drainTimeout, 10*time.Second)
	select {
	case <-sub.stopping:
		wait = 0 // close waits for in-flight messages itself
	default:
	}
	deadline := time.Now().Add(wait)
	for {
		sub.mu.Lock()
		busy := 0
		for _, p := range mine {
			busy += p.inflight
		}
		sub.mu.Unlock()
		if busy == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	sub.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range mine {
		if p.dirty {
			offsets[p.id] = p.commit
		}
		if sub.parts[p.id] == p {
			sub.dropLocked(p)
		}
	}
	sub.mu.Unlock()
	sub.commitSync(ctx, offsets, "revoke")
	sub.log.Debug("partitions revoked", "partitions", ps)
}

// lost forgets partitions without committing: the group no longer
// accepts this member's commits.
func (sub *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, id := range lost[sub.kt] {
		if p := sub.parts[id]; p != nil {
			sub.dropLocked(p)
		}
	}
	sub.log.Warn("partitions lost (group session ended); their in-flight messages will be delivered again", "partitions", lost[sub.kt])
}

// dropLocked forgets p: its queued records, its in-flight count (their acks
// no longer matter) and the contexts of its messages.
func (sub *subscription) dropLocked(p *partition) {
	sub.pending -= len(p.queue)
	sub.inflight -= p.inflight
	p.queue, p.window, p.inflight = nil, nil, 0
	p.cancel()
	delete(sub.parts, p.id)
	if i := slices.Index(sub.order, p.id); i >= 0 {
		sub.order = slices.Delete(sub.order, i, i+1)
	}
	sub.cond.Broadcast()
}

// pollLoop fetches records while fewer than lowWater wait to be handed
// out. Rebalances are blocked from a poll until its records are queued on
// their partitions (BlockRebalanceOnPoll), so a record can only land in the
// state of the assignment it was fetched under.
func (sub *subscription) pollLoop() {
	defer sub.loops.Done()
	lowWater := max(sub.maxInFlight, 128)
	batch := max(2*sub.maxInFlight, 256)
	for {
		sub.mu.Lock()
		for !sub.halt && sub.pending >= lowWater {
			sub.cond.Wait()
		}
		halt := sub.halt
		sub.mu.Unlock()
		if halt {
			return
		}
		fs := sub.cl.PollRecords(sub.ctx, batch)
		if fs.IsClientClosed() || sub.ctx.Err() != nil {
			sub.cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				sub.log.Warn("kafka fetch failed", "partition", p, "error", err)
			}
		})
		sub.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			p := sub.parts[r.Partition]
			if p == nil || r.Topic != sub.kt {
				return // not ours (any more): the next owner reads it
			}
			p.queue = append(p.queue, r)
			sub.pending++
		})
		sub.cond.Broadcast()
		sub.mu.Unlock()
		sub.cl.AllowRebalance()
		if len(fs.Errors()) > 0 && fs.NumRecords() == 0 {
			select { // do not spin on a broker that keeps failing
			case <-time.After(250 * time.Millisecond):
			case <-sub.ctx.Done():
			}
		}
	}
}

// nextLocked picks the next record to hand out, round-robin over the
// partitions that have one and room in their window.
func (sub *subscription) nextLocked() (*partition, *entry) {
	if sub.inflight >= sub.maxInFlight {
		return nil, nil
	}
	n := len(sub.order)
	for i := 0; i < n; i++ {
		sub.next = (sub.next + 1) % n
		p := sub.parts[sub.order[sub.next]]
		if len(p.queue) == 0 || len(p.window) >= sub.windowCap {
			continue
		}
		r := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		sub.pending--
		e := &entry{rec: r}
		p.window = append(p.window, e)
		p.inflight++
		sub.inflight++
		return p, e
	}
	return nil, nil
}

// dispatchLoop hands records out to the output channel.
func (sub *subscription) dispatchLoop() {
	defer sub.loops.Done()
	for {
		sub.mu.Lock()
		var p *partition
		var e *entry
		for !sub.halt {
			if p, e = sub.nextLocked(); p != nil {
				break
			}
			sub.cond.Wait()
		}
		if sub.halt {
			sub.mu.Unlock()
			return
		}
		if sub.pending < max(sub.maxInFlight, 128) {
			sub.cond.Broadcast() // wake the poller
		}
		sub.mu.Unlock()
		msg, done := sub.message(p, e)
		select {
		case sub.out <- msg:
			sub.senders.Add(1)
			go sub.await(p, e, msg, done)
		case <-p.ctx.Done():
			done()
			sub.release(p)
		case <-sub.stopping:
			done()
			sub.release(p)
		}
	}
}

func (sub *subscription) message(p *partition, e *entry) (*message.Message, context.CancelFunc) {
	msg := toMessage(e.rec)
	ctx, cancel := context.WithCancel(p.ctx)
	msg.SetContext(ctx)
	return msg, cancel
}

// await settles one handed-out message: an ack makes its offset
// committable once every earlier one is acked; a nack hands the same record
// out again after NackDelay.
func (sub *subscription) await(p *partition, e *entry, msg *message.Message, done context.CancelFunc) {
	defer sub.senders.Done()
	for {
		select {
		case <-msg.Acked():
			done()
			sub.ack(p, e)
			return
		case <-msg.Nacked():
			done()
			if sub.nackDelay > 0 {
				t := time.NewTimer(sub.nackDelay)
				select {
				case <-t.C:
				case <-p.ctx.Done():
					t.Stop()
					sub.release(p)
					return
				case <-sub.stopping:
					t.Stop()
					sub.release(p)
					return
				}
			}
			msg, done = sub.message(p, e)
			select {
			case sub.out <- msg:
			case <-p.ctx.Done():
				done()
				sub.release(p)
				return
			case <-sub.stopping:
				done()
				sub.release(p)
				return
			}
		case <-p.ctx.Done():
			// Revoked, lost or closed: the next owner delivers it again.
			done()
			return
		case <-sub.drained:
			done()
			sub.release(p)
			return
		}
	}
}

// ack marks e acked and advances p's committable offset past the acked
// prefix of its window.
func (sub *subscription) ack(p *partition, e *entry) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.parts[p.id] != p {
		return // revoked meanwhile: dropLocked already gave up its count
	}
	e.acked = true
	p.inflight--
	sub.inflight--
	var last *kgo.Record
	for len(p.window) > 0 && p.window[0].acked {
		last = p.window[0].rec
		p.window[0] = nil
		p.window = p.window[1:]
	}
	if last != nil {
		p.commit = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
		p.dirty = true
	}
	sub.cond.Broadcast()
}

// release gives up a handed-out record without acking it: it stays below
// the commit point and is read again by whoever owns the partition next.
func (sub *subscription) release(p *partition) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.parts[p.id] != p {
		return
	}
	p.inflight--
	sub.inflight--
	sub.cond.Broadcast()
}

// commitLoop commits the acked prefixes every commit interval.
func (sub *subscription) commitLoop() {
	defer sub.loops.Done()
	t := time.NewTicker(sub.commitEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			sub.commitDirty(sub.ctx, "interval")
		case <-sub.ctx.Done():
			return
		}
	}
}

func (sub *subscription) commitDirty(ctx context.Context, why string) {
	sub.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range sub.parts {
		if p.dirty {
			offsets[p.id] = p.commit
			p.dirty = false
		}
	}
	sub.mu.Unlock()
	if !sub.commitSync(ctx, offsets, why) {
		sub.mu.Lock()
		for id := range offsets {
			if p := sub.parts[id]; p != nil {
				p.dirty = true
			}
		}
		sub.mu.Unlock()
	}
}

// commitSync commits offsets of sub's topic and reports success.
func (sub *subscription) commitSync(ctx context.Context, offsets map[int32]kgo.EpochOffset, why string) bool {
	if err := kclient.CommitSync(ctx, sub.cl, sub.kt, offsets); err != nil {
		if ctx.Err() == nil {
			sub.log.Warn("kafka offset commit failed; acked messages may be delivered again", "when", why, "error", err)
		}
		return false
	}
	return true
}

// close drains: stop fetching and handing out, wait up to DrainTimeout for
// handed-out messages to be settled, commit the acked prefixes, close the
// output channel, leave the group.
func (sub *subscription) close() {
	sub.closeOnce.Do(func() {
		close(sub.stopping)
		sub.mu.Lock()
		sub.halt = true
		sub.cond.Broadcast()
		sub.mu.Unlock()

		deadline := time.Now().Add(sub.drainTimeout)
		for {
			sub.mu.Lock()
			n := sub.inflight
			sub.mu.Unlock()
			if n == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(sub.drained)
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sub.commitDirty(cctx, "close")
		cancel()
		sub.cancel() // stops the poll and commit loops, cancels message contexts
		sub.loops.Wait()
		sub.senders.Wait()
		close(sub.out)
		sub.cl.CloseAllowingRebalance()
	})
}
