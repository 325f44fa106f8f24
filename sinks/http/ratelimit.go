package http

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// A destination's rate limit holds for the whole process: every target of
// every rule that delivers to the destination takes its requests from the
// same limiter, found in this registry by the destination's name.

// windowGuard widens the one-second window of a rate limit, so that the
// jitter between sending a request and the server counting it (scheduling
// on a loaded machine, the network) cannot push N+1 requests into the
// server's second. A limit of N per second therefore runs at about N/1.05
// requests a second.
const windowGuard = 50 * time.Millisecond

var limiters = struct {
	sync.Mutex
	m map[string]*limiter
}{m: map[string]*limiter{}}

// sharedLimiter returns the limiter of a destination, made on first use. A
// destination whose limit changed (a new config) gets a new limiter; sinks
// built from the old config keep the old one until they close.
func sharedLimiter(destination string, perSecond int) *limiter {
	limiters.Lock()
	defer limiters.Unlock()
	if l := limiters.m[destination]; l != nil && l.perSecond == perSecond {
		return l
	}
	l := newLimiter(perSecond)
	limiters.m[destination] = l
	return l
}

// limiter spaces requests evenly, one every (1s+windowGuard)/N, with a
// token bucket of burst 1, and guarantees at the moment of sending that no
// window of 1s+windowGuard holds more than N of them.
//
// Waiters take turns: only the one whose turn it is reserves a token, so
// the bucket's next token is always counted from the last request that
// actually went. Were every waiter to reserve ahead, a pause of the
// process (a GC cycle, the machine busy) would wake all whose reserved
// times fell into it at once, and the API would see them as a burst.
type limiter struct {
	perSecond int
	bucket    *rate.Limiter
	turn      chan struct{} // holds a token while a waiter has its turn
	sent      []time.Time   // ring: when the last N requests were let go
	next      int           // the oldest entry, overwritten next
}

func newLimiter(perSecond int) *limiter {
	window := time.Second + windowGuard
	return &limiter{
		perSecond: perSecond,
		bucket:    rate.NewLimiter(rate.Every(window/time.Duration(perSecond)), 1),
		turn:      make(chan struct{}, 1),
		sent:      make([]time.Time, perSecond),
	}
}

// Wait blocks until one more request may be sent, and counts it as sent.
func (l *limiter) Wait(ctx context.Context) error {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	if err := l.bucket.Wait(ctx); err != nil {
		return err
	}
	window := time.Second + windowGuard
	for {
		now := time.Now()
		oldest := l.sent[l.next]
		wait := window - now.Sub(oldest)
		if oldest.IsZero() || wait <= 0 {
			l.sent[l.next] = now
			l.next = (l.next + 1) % len(l.sent)
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
