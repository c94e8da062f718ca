package loadgen

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// counts are what happened in one stretch of time: a phase (3-digit
// histograms) or one second of the timeline (2-digit ones).
type counts struct {
	pages, queries atomic.Int64
	pageLat, query *Hist
	mu             sync.Mutex
	fails          map[Failure]int64
	failedPages    atomic.Int64
}

func newCounts(sigfig int) *counts {
	return &counts{pageLat: NewHist(sigfig), query: NewHist(sigfig), fails: map[Failure]int64{}}
}

func (c *counts) fail(f Failure) {
	c.mu.Lock()
	c.fails[f]++
	c.mu.Unlock()
}

// ErrorCount is how many times one failure was seen.
type ErrorCount struct {
	Class Class  `json:"class"`
	Code  string `json:"sqlstate,omitempty"`
	Count int64  `json:"count"`
}

// errorCounts are c's failures, most frequent first.
func (c *counts) errorCounts() []ErrorCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ErrorCount, 0, len(c.fails))
	for f, n := range c.fails {
		out = append(out, ErrorCount{Class: f.Class, Code: f.Code, Count: n})
	}
	slices.SortFunc(out, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Class, b.Class), cmp.Compare(a.Code, b.Code))
	})
	return out
}

func (c *counts) failures() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range c.fails {
		n += v
	}
	return n
}

// recorder takes a target's measurements: into the current phase and the
// current second, swapped as time passes.
type recorder struct {
	phase  atomic.Pointer[counts]
	second atomic.Pointer[counts]
}

// page counts a page; its latency only if it succeeded: a page that
// failed fast (a refused login) must not make a target look quick.
func (r *recorder) page(d time.Duration, failed bool) {
	for _, c := range []*counts{r.phase.Load(), r.second.Load()} {
		c.pages.Add(1)
		if failed {
			c.failedPages.Add(1)
		} else {
			c.pageLat.Record(d)
		}
	}
}

func (r *recorder) query(d time.Duration, f *Failure) {
	for _, c := range []*counts{r.phase.Load(), r.second.Load()} {
		c.queries.Add(1)
		if f != nil {
			c.fail(*f)
		} else {
			c.query.Record(d)
		}
	}
}

// PhaseResult is one phase of one target's run.
type PhaseResult struct {
	Name         string       `json:"name"`
	Users        int          `json:"users"`
	Seconds      float64      `json:"seconds"`
	Pages        int64        `json:"pages"`
	FailedPages  int64        `json:"failed_pages"`
	Queries      int64        `json:"queries"`
	Failed       int64        `json:"failed_queries"`
	PageLatency  Latency      `json:"page_latency"`
	QueryLatency Latency      `json:"query_latency"`
	Errors       []ErrorCount `json:"errors"`
}

func (c *counts) phaseResult(p Phase, took time.Duration) PhaseResult {
	return PhaseResult{Name: p.Name, Users: p.Users, Seconds: took.Seconds(), Pages: c.pages.Load(),
		FailedPages: c.failedPages.Load(), Queries: c.queries.Load(), Failed: c.failures(),
		PageLatency: c.pageLat.Summary(), QueryLatency: c.query.Summary(), Errors: c.errorCounts()}
}

// Second is one second of a target's timeline.
type Second struct {
	At       float64 `json:"t"` // seconds since the target's run began
	Phase    string  `json:"phase"`
	Pages    int64   `json:"pages"`
	Queries  int64   `json:"queries"`
	Errors   int64   `json:"errors"`
	PageP95  float64 `json:"page_p95_ms"`
	QueryP95 float64 `json:"query_p95_ms"`
	Sample
}

func (c *counts) second(at time.Duration, phase string, s Sample) Second {
	return Second{At: at.Seconds(), Phase: phase, Pages: c.pages.Load(), Queries: c.queries.Load(), Errors: c.failures(),
		PageP95: c.pageLat.Summary().P95, QueryP95: c.query.Summary().P95, Sample: s}
}
