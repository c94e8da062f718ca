package observe

import (
	"math"
	"time"
)

// Buckets follow Prometheus's native-histogram schema 3: the bucket with
// key k holds durations in (2^((k-1)/8), 2^(k/8)] seconds, so each is about
// 9% wide and an exporter can hand the counts to Prometheus unchanged.
const (
	Schema = 3

	// MinKey's bucket starts just above ZeroThreshold (about 0.95µs) and
	// MaxKey's ends at 2^12 s (about 68 minutes). 256 buckets in all.
	MinKey = -159
	MaxKey = 96

	NumBuckets = MaxKey - MinKey + 1
)

// ZeroThreshold is the zero bucket's upper bound in seconds (2^-20, about
// 0.95µs): durations at or below it (a wait that did not wait) are counted
// there, as Prometheus's zero bucket.
var ZeroThreshold = math.Exp2(float64(MinKey-1) / 8)

// Durations at or below zeroNanos go to the zero bucket without any float
// work; it is ZeroThreshold in whole nanoseconds, rounded down.
var zeroNanos = time.Duration(ZeroThreshold * 1e9)

// fracBounds are the upper bounds of the eight buckets of one power of
// two, as fractions in [0.5, 1) the way math.Frexp splits a float; the same
// table as client_golang's nativeHistogramBounds[3].
var fracBounds = func() (b [8]float64) {
	for i := range b {
		b[i] = math.Exp2(float64(i)/8 - 1)
	}
	return b
}()

// upperNanos[i] is the upper bound of slot i (see slot) as a Duration,
// rounded up so that a quantile never reads below the values it covers.
var upperNanos = func() (u [NumBuckets + 1]time.Duration) {
	u[0] = zeroNanos
	for i := 1; i < len(u); i++ {
		u[i] = time.Duration(math.Ceil(UpperBound(MinKey-1+i) * 1e9))
	}
	return u
}()

// UpperBound is the upper bound, in seconds, of the bucket with key k.
func UpperBound(k int) float64 { return math.Exp2(float64(k) / 8) }

// slot is where d is counted: 0 for the zero bucket, 1 + key - MinKey for
// the others. Durations beyond MaxKey's bound are counted in MaxKey's
// bucket: it is the overflow bucket, and quantiles that land there report
// the maximum instead of its bound.
func slot(d time.Duration) int {
	if d <= zeroNanos {
		return 0
	}
	frac, exp := math.Frexp(d.Seconds())
	k := (exp - 1) * len(fracBounds)
	for _, b := range fracBounds {
		if frac <= b {
			break
		}
		k++
	}
	switch {
	case k < MinKey: // rounding at ZeroThreshold itself
		return 0
	case k > MaxKey:
		return NumBuckets
	}
	return k - MinKey + 1
}
