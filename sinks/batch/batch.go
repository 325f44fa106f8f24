// Package batch gathers items handed over one at a time — by the dispatcher's
// concurrent Deliver calls, or by a pipe — into batches, flushes each batch
// with one call, and tells every item's sender how its item fared. Sinks
// that write in bulk (ClickHouse, Kafka, SQL) share it; it knows nothing
// about any of them.
//
// What it guarantees:
//   - A batch is cut when it reaches MaxRows items or MaxBytes, MaxWait
//     after its first item, when every possible caller is waiting on it
//     (Callers), or on Flush / Close.
//   - Up to MaxInFlight batches are flushed at once.
//   - Memory is bounded: at most MaxPending items and MaxPendingBytes are
//     held (open batch plus batches in flight). Submit blocks beyond that,
//     which is the backpressure a slow or unreachable target exerts.
//   - A batch whose flush fails with a retryable error is flushed again —
//     the same items, in the same order, so a sink can make its retries
//     idempotent (a deduplication token derived from the items) — until it
//     succeeds, RetryFor passes, or Close. A permanent error
//     (sinks.Permanent) fails every item of the batch at once; an error
//     wrapped with Split makes the batcher halve the batch until the items
//     that cause it stand alone and fail alone, permanently.
//   - The flush function may fail single items (Batch.Fail) and still
//     succeed for the rest: each sender gets its own item's result.
//
// It must not retry forever past Close, spawn unbounded goroutines, or hold
// an item's memory after the item's result is out.
package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/busbar/busbar/sinks"
)

// Defaults of Limits.
const (
	DefaultMaxRows      = 50_000
	DefaultMaxBytes     = 16 << 20
	DefaultMaxWait      = time.Second
	DefaultMaxInFlight  = 4
	DefaultRetryInitial = 100 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
)

// Limits shape a Batcher. Zero fields take their defaults.
type Limits struct {
	// MaxRows cuts a batch when it holds this many items.
	MaxRows int
	// MaxBytes cuts a batch when the sizes of its items add up to this.
	MaxBytes int
	// MaxWait cuts a non-empty batch this long after its first item came.
	MaxWait time.Duration
	// MaxInFlight is how many batches may be flushed at once.
	MaxInFlight int
	// MaxPending bounds the items held, in the open batch and in flight;
	// Submit blocks while it is reached. Default MaxRows × (MaxInFlight+1).
	MaxPending int
	// MaxPendingBytes bounds the bytes held likewise. Default
	// MaxBytes × (MaxInFlight+1).
	MaxPendingBytes int
	// Callers, when not zero, is how many senders can have an item pending
	// at once (the dispatcher's concurrency). When that many are pending
	// nobody is left to add to the open batch, so it is cut at once instead
	// of after MaxWait.
	Callers int
	// RetryInitial and RetryMax bound the backoff (full jitter, doubling)
	// between flushes of a batch that failed with a retryable error.
	RetryInitial, RetryMax time.Duration
	// RetryFor gives up on a failing batch this long after its first flush:
	// its items get the last error, which callers may retry in other batches.
	// Zero retries until Close.
	RetryFor time.Duration
	// Logger receives one warning per failed flush.
	Logger *slog.Logger
}

func (l *Limits) applyDefaults() {
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxWait <= 0 {
		l.MaxWait = DefaultMaxWait
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxPending <= 0 {
		l.MaxPending = l.MaxRows * (l.MaxInFlight + 1)
	}
	if l.MaxPendingBytes <= 0 {
		l.MaxPendingBytes = l.MaxBytes * (l.MaxInFlight + 1)
	}
	if l.RetryInitial <= 0 {
		l.RetryInitial = DefaultRetryInitial
	}
	if l.RetryMax <= 0 {
		l.RetryMax = DefaultRetryMax
	}
	if l.RetryMax < l.RetryInitial {
		l.RetryMax = l.RetryInitial
	}
	if l.Logger == nil {
		l.Logger = slog.Default()
	}
}

// ErrClosed is returned by Submit after Close began. It is retryable: the
// item was not taken.
var ErrClosed = errors.New("batch: closed")

// Batch is what a flush function gets: items in the order they came.
type Batch[T any] struct {
	// Items to write. The flush function must not keep the slice.
	Items []T
	// Bytes is the sum of the items' sizes.
	Bytes int
	// Attempt counts flushes of these same items: 1 the first time.
	Attempt int

	root *group
	idx  []int // position of each item in root
}

// Len is the number of items.
func (b *Batch[T]) Len() int { return len(b.Items) }

// Fail gives item i its own error; the other items succeed if the flush
// returns nil. Wrap err with sinks.Permanent when retrying cannot help.
func (b *Batch[T]) Fail(i int, err error) {
	if err == nil {
		err = errors.New("item failed")
	}
	b.root.errs[b.idx[i]] = err
}

// Failed reports whether item i was failed by Fail (in this attempt or an
// earlier one); a flush function skips such items.
func (b *Batch[T]) Failed(i int) bool { return b.root.errs[b.idx[i]] != nil }

// splitError asks the batcher to isolate the items that cause err.
type splitError struct{ err error }

func (e *splitError) Error() string { return e.err.Error() }
func (e *splitError) Unwrap() error { return e.err }

// Split marks a flush error as caused by some items of the batch (bad data
// the target rejects), not by the target: the batcher halves the batch and
// flushes each half, down to single items, which then fail permanently
// with err. Use it when the target rejects a whole batch for one bad item.
func Split(err error) error {
	if err == nil {
		return nil
	}
	return &splitError{err: err}
}

// FlushFunc writes one batch. nil means every item not failed with
// Batch.Fail was written. Any other error applies to the whole batch: see
// the package doc for retries, Permanent and Split.
type FlushFunc[T any] func(ctx context.Context, b *Batch[T]) error

// group is one cut batch as its senders see it: the result of each item
// and a channel closed when all results are out.
type group struct {
	errs  []error
	sizes []int
	done  chan struct{}
}

// Batcher gathers items into batches. It is safe for concurrent use.
type Batcher[T any] struct {
	l     Limits
	flush FlushFunc[T]

	mu           sync.Mutex
	open         *openBatch[T]
	pending      int // items held: open batch + in flight
	pendingBytes int
	space        chan struct{} // closed (and replaced) when room frees up
	waiting      int           // Submits waiting for room
	closed       bool

	slots   chan struct{} // MaxInFlight tokens
	ctx     context.Context
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close: stop retrying
	wg      sync.WaitGroup
}

type openBatch[T any] struct {
	items []T
	g     *group
	bytes int
	timer *time.Timer
}

// New returns a Batcher that writes with flush.
func New[T any](l Limits, flush FlushFunc[T]) *Batcher[T] {
	l.applyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Batcher[T]{
		l:       l,
		flush:   flush,
		space:   make(chan struct{}),
		slots:   make(chan struct{}, l.MaxInFlight),
		ctx:     ctx,
		cancel:  cancel,
		closing: make(chan struct{}),
	}
}

// Limits returns the limits in force, defaults filled in.
func (b *Batcher[T]) Limits() Limits { return b.l }

// Ticket is an item's claim on its result.
type Ticket struct {
	g *group
	i int
}

// Done is closed when the item's result is known.
func (t Ticket) Done() <-chan struct{} { return t.g.done }

// Err is the item's result once Done is closed: nil when it was written.
func (t Ticket) Err() error { return t.g.errs[t.i] }

// Wait blocks until the item's result is known, or ctx ends (the item may
// still be written then).
func (t Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.g.done:
		return t.g.errs[t.i]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add submits item and waits for its result: the call a sink's Deliver
// makes. size is what the item counts towards MaxBytes.
func (b *Batcher[T]) Add(ctx context.Context, item T, size int) error {
	t, err := b.Submit(ctx, item, size)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// Submit hands item over and returns at once with its Ticket, unless the
// batcher is full: then it blocks until there is room, ctx ends (its
// error is returned) or Close begins (ErrClosed). A pipe submits many items
// and then waits on their tickets.
func (b *Batcher[T]) Submit(ctx context.Context, item T, size int) (Ticket, error) {
	b.mu.Lock()
	for !b.closed && b.pending > 0 && (b.pending >= b.l.MaxPending || b.pendingBytes+size > b.l.MaxPendingBytes) {
		ch := b.space
		b.waiting++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiting--
			b.mu.Unlock()
			return Ticket{}, ctx.Err()
		}
		b.mu.Lock()
		b.waiting--
	}
	if b.closed {
		b.mu.Unlock()
		return Ticket{}, ErrClosed
	}
	o := b.open
	if o == nil {
		o = &openBatch[T]{g: &group{done: make(chan struct{})}}
		b.open = o
		o.timer = time.AfterFunc(b.l.MaxWait, func() { b.cutIf(o) })
	}
	i := len(o.items)
	o.items = append(o.items, item)
	o.g.sizes = append(o.g.sizes, size)
	o.bytes += size
	b.pending++
	b.pendingBytes += size
	t := Ticket{g: o.g, i: i}
	if len(o.items) >= b.l.MaxRows || o.bytes >= b.l.MaxBytes || (b.l.Callers > 0 && b.pending >= b.l.Callers) {
		b.cutLocked()
	}
	b.mu.Unlock()
	return t, nil
}

// Flush cuts the open batch now, whatever its size. It does not wait for
// the flush: wait on the tickets.
func (b *Batcher[T]) Flush() {
	b.mu.Lock()
	b.cutLocked()
	b.mu.Unlock()
}

// cutIf cuts o if it is still the open batch (MaxWait passed).
func (b *Batcher[T]) cutIf(o *openBatch[T]) {
	b.mu.Lock()
	if b.open == o {
		b.cutLocked()
	}
	b.mu.Unlock()
}

// cutLocked seals the open batch and starts its flush. b.mu is held.
func (b *Batcher[T]) cutLocked() {
	o := b.open
	if o == nil {
		return
	}
	b.open = nil
	o.timer.Stop()
	o.g.errs = make([]error, len(o.items))
	idx := make([]int, len(o.items))
	for i := range idx {
		idx[i] = i
	}
	bt := &Batch[T]{Items: o.items, Bytes: o.bytes, root: o.g, idx: idx}
	b.wg.Add(1)
	go b.run(bt)
}

// run flushes one cut batch, once a flush slot is free, and settles it.
func (b *Batcher[T]) run(bt *Batch[T]) {
	defer b.wg.Done()
	b.slots <- struct{}{}
	b.write(bt)
	<-b.slots
	b.settle(bt.root)
}

// write flushes bt until it succeeds or must give up, splitting it when
// asked, and records the results in bt.root.errs.
func (b *Batcher[T]) write(bt *Batch[T]) {
	started := time.Now()
	for attempt := 1; ; attempt++ {
		bt.Attempt = attempt
		err := b.flush(b.ctx, bt)
		if err == nil {
			return
		}
		var split *splitError
		switch {
		case errors.As(err, &split):
			live := bt.live()
			if len(live.Items) <= 1 {
				live.failAll(sinks.Permanent(split.err))
				return
			}
			half := len(live.Items) / 2
			b.write(live.sub(0, half))
			b.write(live.sub(half, len(live.Items)))
			return
		case sinks.IsPermanent(err):
			bt.failAll(err)
			return
		}
		giveUp := b.l.RetryFor > 0 && time.Since(started) >= b.l.RetryFor
		select {
		case <-b.closing:
			giveUp = true
		default:
		}
		if giveUp {
			bt.failAll(err)
			return
		}
		wait := backoff(b.l.RetryInitial, b.l.RetryMax, attempt)
		b.l.Logger.Warn("batch flush failed; retrying the same batch", "items", len(bt.Items), "attempt", attempt, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.closing:
			t.Stop()
			bt.failAll(err)
			return
		}
	}
}

// live is bt without the items already failed.
func (bt *Batch[T]) live() *Batch[T] {
	out := &Batch[T]{root: bt.root}
	for i, it := range bt.Items {
		if bt.root.errs[bt.idx[i]] == nil {
			out.Items = append(out.Items, it)
			out.idx = append(out.idx, bt.idx[i])
			out.Bytes += bt.root.sizes[bt.idx[i]]
		}
	}
	return out
}

// sub is items [from, to) of bt as a batch of its own.
func (bt *Batch[T]) sub(from, to int) *Batch[T] {
	out := &Batch[T]{Items: bt.Items[from:to], idx: bt.idx[from:to], root: bt.root}
	for _, i := range out.idx {
		out.Bytes += bt.root.sizes[i]
	}
	return out
}

// failAll gives err to every item not failed yet.
func (bt *Batch[T]) failAll(err error) {
	for _, i := range bt.idx {
		if bt.root.errs[i] == nil {
			bt.root.errs[i] = err
		}
	}
}

// settle publishes a group's results and frees its room.
func (b *Batcher[T]) settle(g *group) {
	bytes := 0
	for _, s := range g.sizes {
		bytes += s
	}
	// Free the room before the senders learn their results: a sender that
	// comes straight back must not find its old item still counted (with
	// Callers, that would cut one-item batches).
	b.mu.Lock()
	b.pending -= len(g.sizes)
	b.pendingBytes -= bytes
	if b.waiting > 0 {
		close(b.space)
		b.space = make(chan struct{})
	}
	b.mu.Unlock()
	close(g.done)
}

// Close stops taking items, flushes the open batch, and waits for every
// batch in flight. A batch that fails now is not retried: its items get the
// error (retryable), so their senders can deliver them again later. Close
// waits for flushes in progress; bound them with the flush function's own
// timeouts.
func (b *Batcher[T]) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	b.cutLocked()
	close(b.space) // wake waiting Submits: they return ErrClosed
	b.space = make(chan struct{})
	b.mu.Unlock()
	close(b.closing)
	b.wg.Wait()
	b.cancel()
	return nil
}

// backoff is a random wait in [initial/2, min(max, initial·2^(n-1))].
func backoff(initial, maxWait time.Duration, n int) time.Duration {
	ceil := initial
	for i := 1; i < n && ceil < maxWait; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxWait)
	half := ceil / 2
	return half + rand.N(ceil-half+1)
}

// String describes the limits, for logs.
func (l Limits) String() string {
	return fmt.Sprintf("max_rows=%d max_bytes=%d max_wait=%v max_in_flight=%d max_pending=%d callers=%d",
		l.MaxRows, l.MaxBytes, l.MaxWait, l.MaxInFlight, l.MaxPending, l.Callers)
}
