package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is an HDR-style log-linear histogram of durations in nanoseconds, safe for
// concurrent use without locks (the hooks of many client reader goroutines record into
// one histogram). Values below 2^subBits ns are counted exactly; above, every power of
// two is split into 2^(subBits-1) equal buckets, so a reported quantile is at most
// 1/2^(subBits-1) (0.8 %) above the true value. Quantiles report the upper edge of the
// bucket, never an understatement, capped by the exact maximum.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	subBits = 8
	subHalf = 1 << (subBits - 1)
	// maxExp covers values up to 2^40 ns (about 18 minutes): longer than any bounded run.
	maxExp      = 40
	histBuckets = (1 << subBits) + (maxExp-subBits+1)*subHalf
)

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(v)
	}
	u := uint64(v)
	exp := bits.Len64(u) - subBits // >= 1: the bucket width is 2^exp
	if exp > maxExp-subBits+1 {
		return histBuckets - 1
	}
	// u>>exp is in [2^(subBits-1), 2^subBits).
	return (1 << subBits) + (exp-1)*subHalf + int(u>>uint(exp)) - subHalf
}

// bucketHigh returns the largest value counted in bucket i.
func bucketHigh(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	j := i - (1 << subBits)
	exp := j/subHalf + 1
	m := int64(j%subHalf + subHalf)
	return (m+1)<<uint(exp) - 1
}

func newHistogram() *histogram { return &histogram{} }

// record adds one duration; negative values (clock oddities) count as zero.
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

// maxValue returns the largest value recorded, exactly.
func (h *histogram) maxValue() time.Duration { return time.Duration(h.max.Load()) }

// quantile returns the value at quantile q (0 < q <= 1): the upper edge of the bucket
// holding the ceil(q*n)-th smallest value, capped by the maximum. 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := bucketHigh(i)
			if m := h.max.Load(); v > m || i == histBuckets-1 { // the last bucket also holds overflow
				v = m
			}
			return time.Duration(v)
		}
	}
	return h.maxValue()
}

// summary is the printed form of a histogram.
type summary struct {
	N                  uint64
	P50, P90, P99, Max time.Duration
}

func (h *histogram) summary() summary {
	return summary{N: h.count(), P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), Max: h.maxValue()}
}
