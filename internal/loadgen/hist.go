package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// maxLatency is the largest latency a histogram tells apart; longer ones
// count as this (a page stuck behind a 10-minute outage is off the chart
// anyway).
const maxLatency = 10 * time.Minute

// Hist is a latency histogram safe for concurrent use: HDR, in
// microseconds, with sigfig significant digits (3: within 0.1%).
type Hist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHist is an empty histogram of the given precision (2 or 3 digits;
// 2 takes about a tenth of 3's memory, for the many per-second ones).
func NewHist(sigfig int) *Hist {
	return &Hist{h: hdrhistogram.New(1, maxLatency.Microseconds(), sigfig)}
}

// Record counts one latency.
func (h *Hist) Record(d time.Duration) {
	us := min(max(d.Microseconds(), 1), maxLatency.Microseconds())
	h.mu.Lock()
	_ = h.h.RecordValue(us) // in range by construction
	h.mu.Unlock()
}

// Latency is a histogram's count and quantiles, in milliseconds as JSON
// and the report show them.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary reads h's quantiles.
func (h *Hist) Summary() Latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	return summarize(h.h)
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}

// Merge adds other's counts to h.
func (h *Hist) Merge(other *Hist) {
	other.mu.Lock()
	snap := hdrhistogram.Import(other.h.Export())
	other.mu.Unlock()
	h.mu.Lock()
	h.h.Merge(snap)
	h.mu.Unlock()
}
