package observe

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// at is a fixed, ordinary instant at the start of a ten-second window.
var at = time.Unix(1_800_000_000, 0)

func TestEveryDurationLandsInTheBucketWhoseBoundsHoldIt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		d := time.Duration(math.Exp2(r.Float64() * 41.89)) // 1ns .. ~68 min, the top bucket's bound
		i := slot(d)
		if i == 0 {
			if d > zeroNanos {
				t.Fatalf("%v in the zero bucket, above its bound %v", d, zeroNanos)
			}
			continue
		}
		k := MinKey - 1 + i
		s := d.Seconds()
		if s > UpperBound(k)*(1+1e-12) || s <= UpperBound(k-1)*(1-1e-12) {
			t.Fatalf("%v (%gs) in bucket %d: (%g, %g]", d, s, k, UpperBound(k-1), UpperBound(k))
		}
	}
}

func TestPowersOfTwoSecondsEndTheirBucket(t *testing.T) {
	// The exporter's classic buckets rely on this: 2^n s is the upper
	// bound of key 8n, so a classic bucket is an exact sum of native ones.
	for n := -14; n <= 7; n++ {
		d := time.Duration(math.Exp2(float64(n)) * 1e9)
		if math.Exp2(float64(n))*1e9 != float64(d) {
			continue // not a whole number of nanoseconds
		}
		if got, want := slot(d), 8*n-MinKey+1; got != want {
			t.Errorf("2^%d s: slot %d, want %d", n, got, want)
		}
	}
}

func TestQuantilesOfAUniformDistributionAreWithinOneBucketAboveTheTruth(t *testing.T) {
	var h Hist
	for i := 1; i <= 10_000; i++ {
		h.ObserveAt(time.Duration(i)*time.Microsecond, at)
	}
	s := h.Total()
	for _, c := range []struct {
		got, want time.Duration
	}{{s.P50, 5 * time.Millisecond}, {s.P95, 9500 * time.Microsecond}, {s.P99, 9900 * time.Microsecond}} {
		if c.got < c.want || float64(c.got) > float64(c.want)*1.0906 {
			t.Errorf("quantile %v, want within 9%% above %v", c.got, c.want)
		}
	}
	if s.Count != 10_000 || s.Max != 10*time.Millisecond {
		t.Errorf("count %d max %v, want 10000 and 10ms", s.Count, s.Max)
	}
	if want := time.Duration(10_000*10_001/2) * time.Microsecond; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
}

func TestQuantilesOfALongTailSeeTheTail(t *testing.T) {
	var h Hist
	for range 980 {
		h.ObserveAt(200*time.Microsecond, at)
	}
	for range 20 {
		h.ObserveAt(2*time.Second, at)
	}
	s := h.Total()
	if s.P50 < 200*time.Microsecond || s.P50 > 219*time.Microsecond {
		t.Errorf("p50 %v, want about 200µs", s.P50)
	}
	if s.P99 != 2*time.Second || s.Max != 2*time.Second {
		t.Errorf("p99 %v max %v, want 2s (the bound clamped to the maximum)", s.P99, s.Max)
	}
}

func TestAWaitThatDidNotWaitCountsInTheZeroBucket(t *testing.T) {
	var h Hist
	h.ObserveAt(0, at)
	h.ObserveAt(-time.Second, at)
	h.ObserveAt(500*time.Nanosecond, at)
	n := h.Native()
	if n.ZeroCount != 3 || n.Count != 3 {
		t.Errorf("zero count %d of %d, want 3 of 3", n.ZeroCount, n.Count)
	}
	if s := h.Total(); s.P99 != 500*time.Nanosecond || s.Sum != 500*time.Nanosecond {
		t.Errorf("p99 %v sum %v, want 500ns each", s.P99, s.Sum)
	}
}

func TestDurationsBeyondTheTopBucketReportTheirMaximum(t *testing.T) {
	var h Hist
	h.ObserveAt(3*time.Hour, at)
	if s := h.Total(); s.P50 != 3*time.Hour {
		t.Errorf("p50 %v, want 3h", s.P50)
	}
	if n := h.Native(); n.Buckets[NumBuckets-1] != 1 {
		t.Errorf("top bucket %d, want 1", n.Buckets[NumBuckets-1])
	}
}

func TestNativeCountsAreTheTotalsBuckets(t *testing.T) {
	var h Hist
	h.ObserveAt(time.Second, at)
	h.ObserveAt(time.Second, at)
	h.ObserveAt(time.Millisecond, at)
	n := h.Native()
	if n.Count != 3 || n.Sum != 2001*time.Millisecond {
		t.Fatalf("count %d sum %v, want 3 and 2.001s", n.Count, n.Sum)
	}
	if got := n.Buckets[0-MinKey]; got != 2 { // 1s ends key 0
		t.Errorf("bucket of key 0: %d, want 2", got)
	}
}

func TestLastMinuteForgetsObservationsOlderThanAMinute(t *testing.T) {
	var h Hist
	h.ObserveAt(time.Second, at)
	h.ObserveAt(time.Millisecond, at.Add(30*time.Second))

	if s := h.LastMinute(at.Add(59 * time.Second)); s.Count != 2 || s.Max != time.Second {
		t.Errorf("after 59s: count %d max %v, want both observations", s.Count, s.Max)
	}
	s := h.LastMinute(at.Add(61 * time.Second))
	if s.Count != 1 || s.Max != time.Millisecond || s.Sum != time.Millisecond {
		t.Errorf("after 61s: %+v, want only the 1ms observation", s)
	}
	if s := h.LastMinute(at.Add(91 * time.Second)); s.Count != 0 {
		t.Errorf("after 91s: count %d, want 0", s.Count)
	}
	if s := h.Total(); s.Count != 2 {
		t.Errorf("total count %d, want 2: totals never forget", s.Count)
	}
}

func TestAReusedWindowStartsEmpty(t *testing.T) {
	var h Hist
	h.ObserveAt(time.Second, at)
	later := at.Add(numWindows * windowSeconds * time.Second) // same slot
	h.ObserveAt(time.Millisecond, later)
	if s := h.LastMinute(later); s.Count != 1 || s.Max != time.Millisecond {
		t.Errorf("%+v, want the new window's one observation only", s)
	}
}

func TestConcurrentObservesAddUpExactly(t *testing.T) {
	var h Hist
	h.ObserveAt(0, at) // the window is claimed before the race begins
	const goroutines, each = 16, 5000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				h.ObserveAt(time.Duration(g*each+i)*time.Microsecond, at)
			}
		})
	}
	wg.Wait()
	const n = goroutines * each
	want := Summary{Count: n + 1, Sum: time.Duration(n*(n-1)/2) * time.Microsecond, Max: (n - 1) * time.Microsecond}
	for _, s := range []Summary{h.Total(), h.LastMinute(at)} {
		if s.Count != want.Count || s.Sum != want.Sum || s.Max != want.Max {
			t.Errorf("count %d sum %v max %v, want %d %v %v", s.Count, s.Sum, s.Max, want.Count, want.Sum, want.Max)
		}
	}
}

func TestObservesRacingWindowResetsAreNeverCountedTwice(t *testing.T) {
	var h Hist
	const goroutines, each = 4, 30_000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range each { // through three windows, claimed while others observe
				h.ObserveAt(time.Millisecond, at.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	wg.Go(func() { // a reader meanwhile, for the race detector
		for range 1000 {
			h.LastMinute(at.Add(15 * time.Second))
		}
	})
	wg.Wait()
	const n = goroutines * each
	if s := h.Total(); s.Count != n || s.Sum != n*time.Millisecond {
		t.Errorf("total count %d sum %v, want %d exactly", s.Count, s.Sum, n)
	}
	// Observations landing while a window is cleared are lost from the
	// last minute; how many depends on scheduling (under -race on a loaded
	// machine, clearing is slow and a tenth went), so the bound below is
	// loose. None may be extra: that is the invariant.
	if s := h.LastMinute(at.Add(30 * time.Second)); s.Count > n || s.Count < n/2 || s.Sum > n*time.Millisecond {
		t.Errorf("last minute count %d sum %v, want at most (and nearly) %d", s.Count, s.Sum, n)
	}
}

func FuzzQuantilesAreOrdered(f *testing.F) {
	f.Add(uint64(1), uint16(10))
	f.Add(uint64(99), uint16(1))
	f.Fuzz(func(t *testing.T, seed uint64, n uint16) {
		r := rand.New(rand.NewPCG(seed, seed))
		var h Hist
		for range int(n%2000) + 1 {
			h.ObserveAt(time.Duration(math.Exp2(r.Float64()*44)), at) // 1ns .. ~4.9h
		}
		s := h.Total()
		if !(s.P50 <= s.P95 && s.P95 <= s.P99 && s.P99 <= s.Max && s.P50 > 0) {
			t.Fatalf("quantiles out of order: %+v", s)
		}
	})
}

// BENCHMARKS (shared 2 vCPU VM, go1.26): Observe 95-160 ns, of which
// time.Now is 60 or more; ObserveAt 25-35 ns; Observe from two cores at
// once 130 ns; 0 allocs.

func BenchmarkHistObserve(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(time.Duration(i&0xffff) * time.Microsecond)
	}
}

func BenchmarkHistObserveAt(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.ObserveAt(time.Duration(i&0xffff)*time.Microsecond, at)
	}
}

func BenchmarkHistObserveParallel(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			h.Observe(time.Duration(i&0xffff) * time.Microsecond)
		}
	})
}
