package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/busbar/busbar/config"
	"github.com/busbar/busbar/pipeline"
	"github.com/busbar/busbar/pipeline/transport/kafka/kclient"
	"github.com/busbar/busbar/sources/internal/cerecord"
)

// This file drives a topic without a bus, for pipes: a Consumer hands the
// records of each poll to a handler in chunks (one partition's records of
// one poll) and commits, per partition, only the offset after the longest
// prefix of chunks whose every record the handler settled. Several polls
// may be in the handler's hands at once; the handler settles records in
// any order and from any goroutine. Converter turns records into events
// exactly as a Source does.

// Converter turns records into events the way a Source does: CloudEvents
// as they are, other records through the mapping.
type Converter struct {
	m          *cerecord.Mapping
	lastSource atomic.Pointer[string] // the last source fastMapped found safe
}

// NewConverter compiles a mapping (nil: only CloudEvents are events).
func NewConverter(m *config.SourceMapping) (*Converter, error) {
	cm, err := cerecord.Compile(m)
	if err != nil {
		return nil, err
	}
	return &Converter{m: cm}, nil
}

// Convert turns one record into an encoded event; now is its ingestion
// time. An error means the record is not an event (IsInvalid): dead-letter
// it with DeadRecordOf.
func (c *Converter) Convert(r *kgo.Record, now time.Time) (pipeline.Record, error) {
	if rec, ok := c.fastMapped(r, now); ok {
		return rec, nil
	}
	return convert(r, c.m, now)
}

// DeadRecordOf is r as a dead letter, with why.
func DeadRecordOf(r *kgo.Record, why error) DeadRecord { return dead(r, why) }

// ConsumerOptions configure a Consumer.
type ConsumerOptions struct {
	// Name names the consumer in logs (a pipe's name).
	Name   string
	Conn   kclient.Conn
	Topic  string
	Group  string
	Start  string // "earliest", "latest" or an RFC 3339 time
	Logger *slog.Logger
	// MaxPoll is the most records one poll hands out (default 10000).
	MaxPoll int
	// MaxUnsettled bounds the records handed out and not yet settled:
	// polling waits while it is reached, which is the backpressure a slow
	// target exerts on the topic (default 100000).
	MaxUnsettled int
	// SessionTimeout of the consumer group (default 45s).
	SessionTimeout time.Duration
	// CommitInterval is how often settled offsets are committed, besides
	// on every revocation and on Close (default 1s).
	CommitInterval time.Duration
	// DrainTimeout bounds how long Close (and, up to 10s of it, a
	// revocation) waits for handed-out records to be settled before
	// committing what is (default 10s).
	DrainTimeout time.Duration
}

// Handler receives the chunks of one poll, in the poll's goroutine and with
// rebalances held back until it returns: it must hand the work on and
// return quickly. It settles every record of every chunk, now or later.
type Handler func(chunks []*Chunk)

// Chunk is the records of one partition from one poll, in offset order.
type Chunk struct {
	Partition int32
	Records   []*kgo.Record

	c    *Consumer
	p    *partState
	left atomic.Int64
	done bool // every record settled; guarded by c.mu
}

// Context is cancelled when the chunk's partition is revoked or lost, or
// the consumer closes: its unsettled records will be read again by the
// partition's next owner, so work on them may stop.
func (ch *Chunk) Context() context.Context { return ch.p.ctx }

// Settle marks n records of the chunk done: delivered, skipped or
// dead-lettered. Once all are, the chunk counts towards its partition's
// commit. Safe for concurrent use; settling more records than the chunk
// has panics.
func (ch *Chunk) Settle(n int) {
	if n <= 0 {
		return
	}
	left := ch.left.Add(-int64(n))
	switch {
	case left == 0:
		ch.c.settled(ch)
	case left < 0:
		panic(fmt.Sprintf("kafka consumer: chunk of partition %d settled %d times too often", ch.Partition, -left))
	}
}

// partState is one assigned partition. A new one is made at every
// assignment, so nothing settled under an earlier assignment moves a later
// one's commits.
type partState struct {
	id        int32
	ctx       context.Context
	cancel    context.CancelFunc
	window    []*Chunk // handed out, offset order, not yet committable
	unsettled int
	commit    kgo.EpochOffset
	dirty     bool
}

// Consumer reads one topic in a consumer group for a handler.
type Consumer struct {
	o      ConsumerOptions
	log    *slog.Logger
	cl     *kgo.Client
	handle Handler

	ctx        context.Context // cancelled at the end of Close
	cancel     context.CancelFunc
	pollCtx    context.Context // cancelled by Stop
	cancelPoll context.CancelFunc

	mu        sync.Mutex
	cond      *sync.Cond
	parts     map[int32]*partState
	unsettled int
	halt      bool

	stopping  chan struct{}
	pollDone  chan struct{}
	loops     sync.WaitGroup
	stopOnce  sync.Once
	closeOnce sync.Once
}

// StartConsumer joins the group and starts handing records to h.
func StartConsumer(o ConsumerOptions, h Handler) (*Consumer, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxPoll <= 0 {
		o.MaxPoll = 10_000
	}
	if o.MaxUnsettled <= 0 {
		o.MaxUnsettled = 100_000
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 45 * time.Second
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	reset, err := startOffset(o.Start)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer %q: %w", o.Name, err)
	}
	c := &Consumer{
		o:        o,
		log:      o.Logger.With("topic", o.Topic, "group", o.Group),
		handle:   h,
		parts:    map[int32]*partState{},
		stopping: make(chan struct{}),
		pollDone: make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pollCtx, c.cancelPoll = context.WithCancel(c.ctx)
	opts, err := o.Conn.Opts(c.log)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer %q: %w", o.Name, err)
	}
	opts = append(opts,
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, o.SessionTimeout/3)),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	)
	if c.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("kafka consumer %q: %w", o.Name, err)
	}
	c.loops.Add(1)
	go c.pollLoop()
	go c.commitLoop()
	return c, nil
}

// startOffset is where a group without committed offsets starts.
func startOffset(start string) (kgo.Offset, error) {
	switch start {
	case "", config.KafkaStartOldest:
		return kgo.NewOffset().AtStart(), nil
	case config.KafkaStartNewest:
		return kgo.NewOffset().AtEnd(), nil
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return kgo.Offset{}, fmt.Errorf("start %q: use earliest, latest or an RFC 3339 time", start)
	}
	return kgo.NewOffset().AfterMilli(t.UnixMilli()), nil
}

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range assigned[c.o.Topic] {
		if old := c.parts[id]; old != nil {
			c.dropLocked(old)
		}
		ctx, cancel := context.WithCancel(c.ctx)
		c.parts[id] = &partState{id: id, ctx: ctx, cancel: cancel, commit: kgo.EpochOffset{Offset: -1}}
	}
	c.log.Debug("partitions assigned", "partitions", assigned[c.o.Topic])
}

// revoked gives the revoked partitions' handed-out records up to
// DrainTimeout to be settled, commits their settled prefix and forgets
// them; what is still unsettled is read again by the next owner.
func (c *Consumer) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.mu.Lock()
	var mine []*partState
	for _, id := range revoked[c.o.Topic] {
		if p := c.parts[id]; p != nil {
			mine = append(mine, p)
		}
	}
	c.mu.Unlock()
	if len(mine) == 0 {
		return
	}
	wait := min(c.o.DrainTimeout, 10*time.Second) // the whole group waits meanwhile
	select {
	case <-c.stopping:
		wait = 0 // Close waits for handed-out records itself
	default:
	}
	c.waitSettled(mine, time.Now().Add(wait))
	c.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range mine {
		if p.dirty {
			offsets[p.id] = p.commit
		}
		if c.parts[p.id] == p {
			c.dropLocked(p)
		}
	}
	c.mu.Unlock()
	c.commitSync(ctx, offsets, "revoke")
	c.log.Debug("partitions revoked", "partitions", revoked[c.o.Topic])
}

// lost forgets partitions without committing: the group no longer takes
// this member's commits.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range lost[c.o.Topic] {
		if p := c.parts[id]; p != nil {
			c.dropLocked(p)
		}
	}
	c.log.Warn("partitions lost (group session ended); their unsettled records will be read again", "partitions", lost[c.o.Topic])
}

// dropLocked forgets p: its chunks no longer count, their contexts end.
func (c *Consumer) dropLocked(p *partState) {
	c.unsettled -= p.unsettled
	p.unsettled, p.window = 0, nil
	p.cancel()
	delete(c.parts, p.id)
	c.cond.Broadcast()
}

// waitSettled waits until ps have no unsettled records or deadline passes.
func (c *Consumer) waitSettled(ps []*partState, deadline time.Time) {
	for {
		c.mu.Lock()
		busy := 0
		for _, p := range ps {
			if c.parts[p.id] == p {
				busy += p.unsettled
			}
		}
		c.mu.Unlock()
		if busy == 0 || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled moves ch's partition's commit past the settled prefix.
func (c *Consumer) settled(ch *Chunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.done = true
	p := ch.p
	if c.parts[p.id] != p {
		return // revoked or lost meanwhile: dropLocked forgot its count
	}
	p.unsettled -= len(ch.Records)
	c.unsettled -= len(ch.Records)
	var last *kgo.Record
	for len(p.window) > 0 && p.window[0].done {
		last = p.window[0].Records[len(p.window[0].Records)-1]
		p.window[0] = nil
		p.window = p.window[1:]
	}
	if last != nil {
		p.commit = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
		p.dirty = true
	}
	c.cond.Broadcast()
}

// pollLoop polls while fewer than MaxUnsettled records are out. Rebalances
// are held back from a poll until its chunks are in their partitions'
// windows and in the handler's hands (BlockRebalanceOnPoll), so a chunk
// always belongs to the assignment it was fetched under.
func (c *Consumer) pollLoop() {
	defer close(c.pollDone)
	for {
		c.mu.Lock()
		for !c.halt && c.unsettled >= c.o.MaxUnsettled {
			c.cond.Wait()
		}
		halt := c.halt
		c.mu.Unlock()
		if halt {
			return
		}
		fs := c.cl.PollRecords(c.pollCtx, c.o.MaxPoll)
		if fs.IsClientClosed() || c.pollCtx.Err() != nil {
			c.cl.AllowRebalance()
			return
		}
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("kafka fetch failed", "partition", p, "error", err)
			}
		})
		var chunks []*Chunk
		c.mu.Lock()
		fs.EachPartition(func(ft kgo.FetchTopicPartition) {
			p := c.parts[ft.Partition]
			if ft.Topic != c.o.Topic || len(ft.Records) == 0 || p == nil {
				return // not ours (any more): the next owner reads it
			}
			ch := &Chunk{Partition: ft.Partition, Records: ft.Records, c: c, p: p}
			ch.left.Store(int64(len(ft.Records)))
			p.window = append(p.window, ch)
			p.unsettled += len(ft.Records)
			c.unsettled += len(ft.Records)
			chunks = append(chunks, ch)
		})
		c.mu.Unlock()
		if len(chunks) > 0 {
			c.handle(chunks)
		}
		c.cl.AllowRebalance()
		if len(fs.Errors()) > 0 && len(chunks) == 0 {
			select { // do not spin on a broker that keeps failing
			case <-time.After(250 * time.Millisecond):
			case <-c.pollCtx.Done():
			}
		}
	}
}

// commitLoop commits the settled prefixes every CommitInterval.
func (c *Consumer) commitLoop() {
	defer c.loops.Done()
	t := time.NewTicker(c.o.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.commitDirty(c.ctx, "interval")
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Consumer) commitDirty(ctx context.Context, why string) {
	c.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range c.parts {
		if p.dirty {
			offsets[p.id] = p.commit
			p.dirty = false
		}
	}
	c.mu.Unlock()
	if !c.commitSync(ctx, offsets, why) {
		c.mu.Lock()
		for id := range offsets {
			if p := c.parts[id]; p != nil {
				p.dirty = true
			}
		}
		c.mu.Unlock()
	}
}

// commitSync commits offsets of the topic and reports success.
func (c *Consumer) commitSync(ctx context.Context, offsets map[int32]kgo.EpochOffset, why string) bool {
	if err := kclient.CommitSync(ctx, c.cl, c.o.Topic, offsets); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("kafka offset commit failed; settled records may be read again", "when", why, "error", err)
		}
		return false
	}
	return true
}

// Stop stops polling and returns once no handler call is running; records
// already handed out may still be settled. Close calls it.
func (c *Consumer) Stop() {
	c.stopOnce.Do(func() {
		close(c.stopping)
		c.mu.Lock()
		c.halt = true
		c.cond.Broadcast()
		c.mu.Unlock()
		c.cancelPoll()
		<-c.pollDone
	})
}

// Close stops polling, waits up to DrainTimeout for handed-out records to
// be settled, commits the settled prefixes and leaves the group.
func (c *Consumer) Close() error {
	c.Stop()
	c.closeOnce.Do(func() {
		c.mu.Lock()
		all := make([]*partState, 0, len(c.parts))
		for _, p := range c.parts {
			all = append(all, p)
		}
		c.mu.Unlock()
		c.waitSettled(all, time.Now().Add(c.o.DrainTimeout))
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.commitDirty(cctx, "close")
		cancel()
		c.cancel() // stops the commit loop, ends chunk contexts
		c.loops.Wait()
		c.cl.CloseAllowingRebalance()
	})
	return nil
}

// Unsettled is how many handed-out records are not settled yet.
func (c *Consumer) Unsettled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unsettled
}
