package observe

import "time"

// Hist is a histogram of durations; see hist_impl in this package's
// branch for the implementation.
type Hist struct{}

// Summary is a histogram's count, sum and quantiles.
type Summary struct {
	Count         uint64
	Sum           time.Duration
	P50, P95, P99 time.Duration
	Max           time.Duration
}
