package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v int64) {
		i := bucketOf(v)
		if hi := bucketHigh(i); v > hi {
			t.Fatalf("value %d above the high edge %d of its bucket %d", v, hi, i)
		}
		if i > 0 && v <= bucketHigh(i-1) {
			t.Fatalf("value %d belongs below bucket %d (previous high %d)", v, i, bucketHigh(i-1))
		}
		if hi := bucketHigh(i); v >= 1<<subBits && float64(hi-v) > float64(v)/subHalf {
			t.Fatalf("bucket of %d too wide: high %d", v, hi)
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for k := 0; k < 100000; k++ {
		check(int64(rng.Uint64N(1 << 40)))
	}
}

// TestQuantilesAgainstSortedSamples compares the histogram's quantiles with the exact
// order statistics of the same samples: each must be at or above the exact value (the
// bucket's upper edge) and within the bucket resolution of it.
func TestQuantilesAgainstSortedSamples(t *testing.T) {
	for name, gen := range map[string]func(*rand.Rand) time.Duration{
		"uniform 0-10ms":  func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) },
		"exponential 1ms": func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(time.Millisecond)) },
		"small ns":        func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(300)) },
		"heavy tail":      func(r *rand.Rand) time.Duration { return time.Duration(1e5 / (r.Float64() + 1e-4)) },
	} {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			h := newHistogram()
			var all []time.Duration
			for i := 0; i < 50000; i++ {
				d := gen(rng)
				h.record(d)
				all = append(all, d)
			}
			slices.Sort(all)
			if h.count() != uint64(len(all)) {
				t.Fatalf("count %d, want %d", h.count(), len(all))
			}
			if h.maxValue() != all[len(all)-1] {
				t.Fatalf("max %v, want %v", h.maxValue(), all[len(all)-1])
			}
			for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(float64(len(all))*q+0.999999) - 1
				exact := all[max(rank, 0)]
				got := h.quantile(q)
				if got < exact || float64(got-exact) > float64(exact)/subHalf+1 {
					t.Errorf("q%.3f = %v, exact %v", q, got, exact)
				}
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	h := newHistogram()
	if h.quantile(0.99) != 0 || h.summary().N != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.record(-5 * time.Millisecond)
	if h.quantile(0.5) != 0 || h.maxValue() != 0 {
		t.Fatalf("a negative duration must count as zero: %v", h.summary())
	}
	h.record(time.Hour) // beyond nothing: still counted, max exact
	if h.maxValue() != time.Hour || h.quantile(1) != time.Hour {
		t.Fatalf("max %v, q1 %v", h.maxValue(), h.quantile(1))
	}
}
