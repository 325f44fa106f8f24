package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busbar/busbar/sinks"
)

// recorder is a flush function that remembers what it wrote.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	fn      func(ctx context.Context, b *Batch[int]) error // optional behaviour
}

func (r *recorder) flush(ctx context.Context, b *Batch[int]) error {
	if r.fn != nil {
		if err := r.fn(ctx, b); err != nil {
			return err
		}
	}
	var ok []int
	for i, it := range b.Items {
		if !b.Failed(i) {
			ok = append(ok, it)
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, ok)
	r.mu.Unlock()
	return nil
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, len(b))
	}
	return out
}

func (r *recorder) all() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, b...)
	}
	slices.Sort(out)
	return out
}

func submitN(t *testing.T, b *Batcher[int], from, n, size int) []Ticket {
	t.Helper()
	var ts []Ticket
	for i := from; i < from+n; i++ {
		tk, err := b.Submit(context.Background(), i, size)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tk)
	}
	return ts
}

func waitAll(t *testing.T, ts []Ticket) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make([]error, len(ts))
	for i, tk := range ts {
		errs[i] = tk.Wait(ctx)
		if errors.Is(errs[i], context.DeadlineExceeded) {
			t.Fatalf("item %d: no result within 10s", i)
		}
	}
	return errs
}

func TestCutByRowsBytesAndTime(t *testing.T) {
	t.Run("rows", func(t *testing.T) {
		r := &recorder{}
		b := New(Limits{MaxRows: 10, MaxWait: time.Hour}, r.flush)
		defer b.Close()
		waitAll(t, submitN(t, b, 0, 30, 1))
		if got := r.sizes(); !slices.Equal(got, []int{10, 10, 10}) {
			t.Fatalf("batch sizes %v, want [10 10 10]", got)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		r := &recorder{}
		b := New(Limits{MaxRows: 1000, MaxBytes: 100, MaxWait: time.Hour}, r.flush)
		defer b.Close()
		waitAll(t, submitN(t, b, 0, 20, 25))
		if got := r.sizes(); !slices.Equal(got, []int{4, 4, 4, 4, 4}) {
			t.Fatalf("batch sizes %v, want five of 4", got)
		}
	})
	t.Run("time", func(t *testing.T) {
		r := &recorder{}
		b := New(Limits{MaxRows: 1000, MaxWait: 50 * time.Millisecond}, r.flush)
		defer b.Close()
		start := time.Now()
		errs := waitAll(t, submitN(t, b, 0, 3, 1))
		if el := time.Since(start); el < 40*time.Millisecond {
			t.Fatalf("flushed after %v, before MaxWait", el)
		}
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := r.sizes(); !slices.Equal(got, []int{3}) {
			t.Fatalf("batch sizes %v, want [3]", got)
		}
	})
	t.Run("callers", func(t *testing.T) {
		// With 8 possible callers all waiting, nobody can add more: cut now.
		r := &recorder{}
		b := New(Limits{MaxRows: 1000, MaxWait: time.Hour, Callers: 8}, r.flush)
		defer b.Close()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if err := b.Add(context.Background(), i, 1); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := r.sizes(); !slices.Equal(got, []int{8}) {
			t.Fatalf("batch sizes %v, want [8]", got)
		}
	})
	t.Run("flush", func(t *testing.T) {
		r := &recorder{}
		b := New(Limits{MaxRows: 1000, MaxWait: time.Hour}, r.flush)
		defer b.Close()
		ts := submitN(t, b, 0, 5, 1)
		b.Flush()
		waitAll(t, ts)
		if got := r.sizes(); !slices.Equal(got, []int{5}) {
			t.Fatalf("batch sizes %v, want [5]", got)
		}
	})
}

func TestPerItemErrors(t *testing.T) {
	r := &recorder{fn: func(_ context.Context, b *Batch[int]) error {
		for i, it := range b.Items {
			if it%3 == 0 {
				b.Fail(i, sinks.Permanent(fmt.Errorf("item %d: bad", it)))
			}
		}
		return nil
	}}
	b := New(Limits{MaxRows: 10, MaxWait: time.Hour}, r.flush)
	defer b.Close()
	errs := waitAll(t, submitN(t, b, 0, 30, 1))
	for i, err := range errs {
		switch {
		case i%3 == 0 && !sinks.IsPermanent(err):
			t.Errorf("item %d: got %v, want a permanent error", i, err)
		case i%3 != 0 && err != nil:
			t.Errorf("item %d: got %v, want success", i, err)
		}
	}
	if got := len(r.all()); got != 20 {
		t.Fatalf("%d items written, want 20", got)
	}
}

func TestRetriesTheSameBatch(t *testing.T) {
	var calls atomic.Int32
	var seen [][]int
	r := &recorder{fn: func(_ context.Context, b *Batch[int]) error {
		seen = append(seen, slices.Clone(b.Items))
		if b.Attempt != int(calls.Add(1)) {
			t.Errorf("Attempt %d on call %d", b.Attempt, calls.Load())
		}
		if b.Attempt < 4 {
			return errors.New("connection refused")
		}
		return nil
	}}
	b := New(Limits{MaxRows: 5, MaxWait: time.Hour, RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond}, r.flush)
	defer b.Close()
	for _, err := range waitAll(t, submitN(t, b, 0, 5, 1)) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("%d flushes, want 4", len(seen))
	}
	for _, s := range seen[1:] {
		if !slices.Equal(s, seen[0]) {
			t.Fatalf("a retry flushed %v, the first flush %v: retries must repeat the batch", s, seen[0])
		}
	}
}

func TestRetryForGivesUp(t *testing.T) {
	b := New(Limits{MaxRows: 2, MaxWait: time.Hour, RetryInitial: time.Millisecond, RetryMax: time.Millisecond, RetryFor: 30 * time.Millisecond},
		func(context.Context, *Batch[int]) error { return errors.New("down") })
	defer b.Close()
	for _, err := range waitAll(t, submitN(t, b, 0, 2, 1)) {
		if err == nil || sinks.IsPermanent(err) {
			t.Fatalf("got %v, want the retryable error", err)
		}
	}
}

func TestPermanentBatchError(t *testing.T) {
	var calls atomic.Int32
	b := New(Limits{MaxRows: 3, MaxWait: time.Hour}, func(context.Context, *Batch[int]) error {
		calls.Add(1)
		return sinks.Permanent(errors.New("table is gone for good"))
	})
	defer b.Close()
	for _, err := range waitAll(t, submitN(t, b, 0, 3, 1)) {
		if !sinks.IsPermanent(err) {
			t.Fatalf("got %v, want permanent", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d flushes, want 1", calls.Load())
	}
}

func TestSplitIsolatesBadItems(t *testing.T) {
	bad := map[int]bool{7: true, 23: true, 24: true}
	r := &recorder{fn: func(_ context.Context, b *Batch[int]) error {
		for _, it := range b.Items {
			if bad[it] {
				return Split(fmt.Errorf("cannot parse row"))
			}
		}
		return nil
	}}
	b := New(Limits{MaxRows: 32, MaxWait: time.Hour}, r.flush)
	defer b.Close()
	errs := waitAll(t, submitN(t, b, 0, 32, 1))
	for i, err := range errs {
		if bad[i] != sinks.IsPermanent(err) || (!bad[i] && err != nil) {
			t.Errorf("item %d: got %v", i, err)
		}
	}
	if got := len(r.all()); got != 29 {
		t.Fatalf("%d items written, want 29", got)
	}
}

func TestBackpressure(t *testing.T) {
	release := make(chan struct{})
	b := New(Limits{MaxRows: 2, MaxWait: time.Hour, MaxInFlight: 1, MaxPending: 4}, func(ctx context.Context, _ *Batch[int]) error {
		<-release
		return nil
	})
	defer b.Close()
	ts := submitN(t, b, 0, 4, 1) // two batches: one flushing, one waiting
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Submit(ctx, 5, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit on a full batcher: got %v, want it to block until ctx ends", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Add(context.Background(), 6, 1) }()
	select {
	case err := <-got:
		t.Fatalf("Add returned %v while full", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(release)
	waitAll(t, ts)
	// Add(6) gets in once capacity frees, which may be after this point:
	// flush until its batch has gone, instead of racing it with one Flush.
	deadline := time.After(10 * time.Second)
	for {
		b.Flush()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
			return
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatal("Add never completed after capacity was freed")
		}
	}
}

func TestPendingBytesBound(t *testing.T) {
	release := make(chan struct{})
	b := New(Limits{MaxRows: 100, MaxBytes: 10, MaxWait: time.Hour, MaxInFlight: 1, MaxPendingBytes: 20}, func(context.Context, *Batch[int]) error {
		<-release
		return nil
	})
	defer b.Close()
	submitN(t, b, 0, 2, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := b.Submit(ctx, 9, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a block on MaxPendingBytes", err)
	}
	close(release)
}

func TestMaxInFlight(t *testing.T) {
	var now, peak atomic.Int32
	b := New(Limits{MaxRows: 1, MaxWait: time.Hour, MaxInFlight: 3}, func(context.Context, *Batch[int]) error {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		return nil
	})
	defer b.Close()
	waitAll(t, submitN(t, b, 0, 30, 1))
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak of %d flushes at once, want 3", p)
	}
}

func TestCloseFlushesAndRefuses(t *testing.T) {
	r := &recorder{}
	b := New(Limits{MaxRows: 100, MaxWait: time.Hour}, r.flush)
	ts := submitN(t, b, 0, 7, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, err := range waitAll(t, ts) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(r.all()); got != 7 {
		t.Fatalf("Close wrote %d items, want 7", got)
	}
	if _, err := b.Submit(context.Background(), 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
	_ = b.Close() // twice is fine
}

func TestCloseDuringOutage(t *testing.T) {
	b := New(Limits{MaxRows: 2, MaxWait: time.Hour, RetryInitial: time.Hour, RetryMax: time.Hour}, func(context.Context, *Batch[int]) error {
		return errors.New("connection refused")
	})
	ts := submitN(t, b, 0, 2, 1)
	time.Sleep(20 * time.Millisecond) // first attempt failed; waiting an hour to retry
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the retry backoff")
	}
	for _, err := range waitAll(t, ts) {
		if err == nil || sinks.IsPermanent(err) {
			t.Fatalf("got %v, want the retryable error", err)
		}
	}
}

// TestManyCallers is the dispatcher's shape: many goroutines, each adding
// one item and waiting, some items failing alone.
func TestManyCallers(t *testing.T) {
	const callers, per = 200, 50
	var written atomic.Int64
	b := New(Limits{MaxRows: 64, MaxWait: 5 * time.Millisecond, MaxInFlight: 2, Callers: callers}, func(_ context.Context, bt *Batch[int]) error {
		for i, it := range bt.Items {
			if it%97 == 0 {
				bt.Fail(i, sinks.Permanent(errors.New("bad")))
			} else {
				written.Add(1)
			}
		}
		return nil
	})
	defer b.Close()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := range callers {
		wg.Go(func() {
			for i := range per {
				it := c*per + i
				err := b.Add(context.Background(), it, 10)
				if (it%97 == 0) != (err != nil) {
					t.Errorf("item %d: %v", it, err)
				}
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if written.Load()+failed.Load() != callers*per {
		t.Fatalf("written %d + failed %d != %d", written.Load(), failed.Load(), callers*per)
	}
}
