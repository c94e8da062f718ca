package observe

import (
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// Meter is what the relay measures for one pool: every server handed out
// (Wait, zero when none was waited for), every request answered (Query)
// and every transaction ended (Xact, an implicit one included). Counts and
// sums since start come from the histograms themselves, so there is one
// place to add to on the hot path.
type Meter struct {
	Latency [NumKinds]Hist
	// Received and Sent count the bytes the pool's clients sent and were
	// sent (relayed batches and answers).
	Received, Sent Counter
	// Served is the server time the pool's clients held, in nanoseconds,
	// added as each hold ends (at most a minute of it: see MaxHold).
	Served Window
	// Closed counts the pool's server connections closed, by why (lost
	// ones included).
	Closed [reason.Count]atomic.Int64
}

// MaxHold bounds what one hold adds to a last-minute window of server
// time: no hold can have used more of the last minute than a minute.
const MaxHold = time.Minute

// Counter is a total since start and its last minute. The zero value is
// ready to use; it is safe for concurrent use.
type Counter struct {
	total atomic.Int64
	last  Window
}

// AddAt counts n at now.
func (c *Counter) AddAt(n int64, now time.Time) {
	c.total.Add(n)
	c.last.AddAt(n, now)
}

// Total is everything counted since start.
func (c *Counter) Total() int64 { return c.total.Load() }

// LastMinute is what was counted over the last minute, as seen at now.
func (c *Counter) LastMinute(now time.Time) int64 { return c.last.LastMinute(now) }
