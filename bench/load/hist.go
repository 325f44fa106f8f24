package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram of nanosecond values, safe for
// concurrent use: values below 2^subBits ns are exact, larger ones land in
// one of 2^subBits buckets per power of two (≤ 0.8 % relative error).
// Quantiles report a bucket's upper bound (never below the true value,
// capped by the recorded max).
type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	subBits     = 7
	histBuckets = (64 - subBits) << subBits
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 1<<(subBits+1) {
		return int(u)
	}
	shift := bits.Len64(u) - subBits - 1
	return (shift+1)<<subBits + int(u>>shift) - 1<<subBits
}

// bucketUpper is the largest value that falls in bucket i.
func bucketUpper(i int) int64 {
	if i < 1<<(subBits+1) {
		return int64(i)
	}
	shift := i>>subBits - 1
	m := uint64(i&(1<<subBits-1)) + 1<<subBits
	return int64((m+1)<<shift - 1)
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *hist) count() uint64 { return h.n.Load() }

// quantile returns the q-quantile (0 < q ≤ 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

func (h *hist) maxValue() time.Duration { return time.Duration(h.max.Load()) }

func (h *hist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
	h.max.Store(0)
}

// sparse returns the non-empty buckets as [index, count] pairs (for /stats).
func (h *hist) sparse() [][2]uint64 {
	var out [][2]uint64
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out = append(out, [2]uint64{uint64(i), c})
		}
	}
	return out
}

// load replaces h's content with a sparse form and a max.
func (h *hist) load(sp [][2]uint64, maxV int64) {
	h.reset()
	var n uint64
	for _, p := range sp {
		if p[0] < histBuckets {
			h.counts[p[0]].Store(p[1])
			n += p[1]
		}
	}
	h.n.Store(n)
	h.max.Store(maxV)
}
