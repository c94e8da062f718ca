package web

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// sample is one pool at one instant, what the page's charts draw.
type sample struct {
	at                           time.Time
	serversActive, size, waiting int
	maxWait                      time.Duration
	queries                      uint64 // in the minute before at
	queryP50, queryP95, queryP99 time.Duration
}

// ring holds a pool's last len(buf) samples, oldest first from start.
type ring struct {
	buf      []sample
	start, n int
	lastSeen time.Time
}

func (r *ring) push(s sample) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
}

// each calls f on the samples oldest first.
func (r *ring) each(f func(sample)) {
	for i := range r.n {
		f(r.buf[(r.start+i)%len(r.buf)])
	}
}

type poolKey struct{ database, user string }

// history is each pool's ring. Its memory is bounded: perPool samples for
// each pool the Source has shown in the last keep.
type history struct {
	perPool int
	keep    time.Duration

	mu    sync.Mutex
	pools map[poolKey]*ring
}

func newHistory(perPool int, keep time.Duration) *history {
	return &history{perPool: max(perPool, 1), keep: keep, pools: map[poolKey]*ring{}}
}

func (h *history) add(now time.Time, pools []observe.Pool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range pools {
		k := poolKey{p.Database, p.User}
		r := h.pools[k]
		if r == nil {
			r = &ring{buf: make([]sample, h.perPool)}
			h.pools[k] = r
		}
		q := p.LatencyNow[observe.Query]
		r.push(sample{
			at:            now,
			serversActive: p.ServersActive, size: p.Size, waiting: p.ClientsWaiting,
			maxWait: p.MaxWait,
			queries: q.Count, queryP50: q.P50, queryP95: q.P95, queryP99: q.P99,
		})
		r.lastSeen = now
	}
	for k, r := range h.pools {
		if now.Sub(r.lastSeen) > h.keep {
			delete(h.pools, k)
		}
	}
}

type poolHistory struct {
	Database string       `json:"database"`
	User     string       `json:"user"`
	Samples  []sampleJSON `json:"samples"`
}

type sampleJSON struct {
	T              float64 `json:"t"` // unix seconds
	ServersActive  int     `json:"servers_active"`
	Size           int     `json:"size"`
	ClientsWaiting int     `json:"clients_waiting"`
	MaxWait        seconds `json:"max_wait"`
	Queries        uint64  `json:"queries"`
	// The query latency percentiles are null when no query ended in the
	// minute before T.
	QueryP50 *seconds `json:"query_p50"`
	QueryP95 *seconds `json:"query_p95"`
	QueryP99 *seconds `json:"query_p99"`
}

// read returns the samples taken after the unix millisecond afterMS, of one pool
// ("database/user") or of all when pool is "", sorted by database, user.
func (h *history) read(afterMS int64, pool string) []poolHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []poolHistory{}
	for k, r := range h.pools {
		if pool != "" && pool != k.database+"/"+k.user {
			continue
		}
		ph := poolHistory{Database: k.database, User: k.user, Samples: []sampleJSON{}}
		r.each(func(s sample) {
			if s.at.UnixMilli() <= afterMS {
				return
			}
			j := sampleJSON{
				T:             float64(s.at.UnixMilli()) / 1e3,
				ServersActive: s.serversActive, Size: s.size, ClientsWaiting: s.waiting,
				MaxWait: seconds(s.maxWait), Queries: s.queries,
			}
			if s.queries > 0 {
				p50, p95, p99 := seconds(s.queryP50), seconds(s.queryP95), seconds(s.queryP99)
				j.QueryP50, j.QueryP95, j.QueryP99 = &p50, &p95, &p99
			}
			ph.Samples = append(ph.Samples, j)
		})
		out = append(out, ph)
	}
	slices.SortFunc(out, func(a, b poolHistory) int {
		return cmp.Or(cmp.Compare(a.Database, b.Database), cmp.Compare(a.User, b.User))
	})
	return out
}
