package observe

import (
	"sync/atomic"
	"time"
)

// Hist is a histogram of durations for the hot path: Observe is lock-free
// and allocates nothing, from any number of goroutines. It keeps counts
// since start and, in a ring of windows, counts over the last minute.
// The zero value is ready to use. About 15 KiB each.
//
// Quantiles are read from the buckets (schema 3, see Schema): each is
// reported as the upper bound of the bucket it falls in, clamped to the
// maximum, so it is at most 9% above the true value and never below it.
type Hist struct {
	total counts
	ring  [numWindows]struct {
		epoch atomic.Int64
		counts
	}
}

// counts is one set of buckets with their sum and maximum.
type counts struct {
	n   [NumBuckets + 1]atomic.Uint64 // by slot; see slot
	sum atomic.Int64                  // nanoseconds
	max atomic.Int64                  // nanoseconds
}

func (c *counts) add(i int, d time.Duration) {
	c.n[i].Add(1)
	c.sum.Add(int64(d))
	storeMax(&c.max, int64(d))
}

func (c *counts) clear() {
	for i := range c.n {
		c.n[i].Store(0)
	}
	c.sum.Store(0)
	c.max.Store(0)
}

// Summary is a histogram's count, sum, quantiles and maximum. P50, P95
// and P99 are bucket upper bounds clamped to Max: within 9% above the
// true quantile.
type Summary struct {
	Count         uint64
	Sum           time.Duration
	P50, P95, P99 time.Duration
	Max           time.Duration
}

// Observe counts one duration, now. Negative durations count as zero.
// Reading the clock is most of its cost (see the benchmarks in hist_test.go):
// a caller that has just read it to measure d should pass it to ObserveAt.
func (h *Hist) Observe(d time.Duration) { h.ObserveAt(d, time.Now()) }

// ObserveAt counts one duration at the given time, normally the end of
// what d measures: the time only chooses the window of the last minute it
// is counted in.
//
// When a window's slot is reused, observations racing the reset (those
// landing while the slot is cleared, or from a goroutine whose clock read
// a window late) are left out of the last minute. They are still counted
// in Total; the last minute may miss a few observations at a window's
// start, never count one twice.
func (h *Hist) ObserveAt(d time.Duration, now time.Time) {
	d = max(d, 0)
	i := slot(d)
	h.total.add(i, d)
	e := epochOf(now)
	if e < 0 {
		return
	}
	w := &h.ring[e%numWindows]
	ok, own := claim(&w.epoch, e)
	if own {
		w.clear()
		w.epoch.Store(e)
	}
	if ok {
		w.add(i, d)
	}
}

// Total summarizes every observation since start.
func (h *Hist) Total() Summary {
	var b [NumBuckets + 1]uint64
	h.total.load(&b)
	return summarize(&b, time.Duration(h.total.sum.Load()), time.Duration(h.total.max.Load()))
}

// LastMinute summarizes the observations of the last minute as seen at
// now: the current ten-second window and the five before it.
func (h *Hist) LastMinute(now time.Time) Summary {
	e := epochOf(now)
	var all, one [NumBuckets + 1]uint64
	var sum, most time.Duration
	for i := range h.ring {
		w := &h.ring[i]
		ep := w.epoch.Load()
		if !recent(ep, e) {
			continue
		}
		w.load(&one)
		s, m := w.sum.Load(), w.max.Load()
		if w.epoch.Load() != ep { // reused while read
			continue
		}
		for j, n := range one {
			all[j] += n
		}
		sum += time.Duration(s)
		most = max(most, time.Duration(m))
	}
	return summarize(&all, sum, most)
}

func (c *counts) load(b *[NumBuckets + 1]uint64) {
	for i := range c.n {
		b[i] = c.n[i].Load()
	}
}

// summarize reads quantiles off bucket counts by nearest rank. The count
// is the buckets' sum, so quantiles agree with it even when read while
// observations arrive.
func summarize(b *[NumBuckets + 1]uint64, sum, most time.Duration) Summary {
	var n uint64
	for _, c := range b {
		n += c
	}
	return Summary{
		Count: n, Sum: sum, Max: most,
		P50: quantile(b, n, 0.50, most),
		P95: quantile(b, n, 0.95, most),
		P99: quantile(b, n, 0.99, most),
	}
}

func quantile(b *[NumBuckets + 1]uint64, n uint64, q float64, most time.Duration) time.Duration {
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999) // ceil, but 0.95*100 is rank 95, not 96
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range b {
		seen += c
		if seen >= rank {
			if i == NumBuckets { // the overflow bucket has no useful bound
				return most
			}
			return min(upperNanos[i], most)
		}
	}
	return most
}

// Native is a histogram's counts since start, for an exporter, in the
// shape of a Prometheus native histogram of schema Schema.
type Native struct {
	Count     uint64 // sum of ZeroCount and Buckets
	Sum       time.Duration
	ZeroCount uint64 // durations at or below ZeroThreshold
	// Buckets[i] counts the bucket with key MinKey+i; durations beyond
	// MaxKey's bound are counted in the last.
	Buckets [NumBuckets]uint64
}

// Native copies the counts since start.
func (h *Hist) Native() Native {
	var b [NumBuckets + 1]uint64
	h.total.load(&b)
	nat := Native{Sum: time.Duration(h.total.sum.Load()), ZeroCount: b[0]}
	copy(nat.Buckets[:], b[1:])
	for _, c := range b {
		nat.Count += c
	}
	return nat
}

// Add adds o's counts to n's, as if one histogram had seen both (two
// pools of one database and user, say).
func (n *Native) Add(o *Native) {
	n.Count += o.Count
	n.Sum += o.Sum
	n.ZeroCount += o.ZeroCount
	for i, c := range o.Buckets {
		n.Buckets[i] += c
	}
}
