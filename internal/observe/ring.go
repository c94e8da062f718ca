package observe

import (
	"sync/atomic"
	"time"
)

// The last minute is kept as a ring of windows, each keyed by its epoch
// (unix time / windowSeconds). A slot is reused for a new epoch when the
// first observation of that epoch claims it: it is cleared then, not by a
// timer, so an idle histogram costs nothing.
//
// With six windows of ten seconds, "the last minute" is the current
// (partial) window and the five before it: between 50 and 60 seconds,
// never anything older than 60.
const (
	windowSeconds = 10
	numWindows    = 6
)

// resetting marks a slot whose owner is clearing it for a new epoch.
const resetting = -1

// epochOf is the window now falls in; -1 (no window) before 1970.
func epochOf(now time.Time) int64 {
	s := now.Unix()
	if s < 0 {
		return -1
	}
	return s / windowSeconds
}

// claim says whether the slot whose epoch is ep may count an observation
// of window e. When it returns own, the caller has just claimed the slot
// (ep now reads resetting): it must clear the slot, then store e in ep.
//
// An observation that finds the slot being cleared, or already holding a
// newer window (its clock read a window late), is not counted in the
// window; callers count it in their totals regardless. Readers skip a slot
// being cleared, so they never see it half cleared.
func claim(ep *atomic.Int64, e int64) (ok, own bool) {
	if e < 0 {
		return false, false
	}
	for {
		cur := ep.Load()
		switch {
		case cur == e:
			return true, false
		case cur == resetting || cur > e:
			return false, false
		case ep.CompareAndSwap(cur, resetting):
			return true, true
		}
	}
}

// recent says whether a slot holding window ep is within the last
// minute as seen from window e.
func recent(ep, e int64) bool {
	return ep != resetting && ep <= e && ep > e-numWindows
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Window counts something (a client's server time, in nanoseconds, say)
// over the last minute, in the same ring of windows as Hist. The zero
// value is ready to use; it is safe for concurrent use and allocates
// nothing.
type Window struct {
	ring [numWindows]struct {
		epoch atomic.Int64
		n     atomic.Int64
	}
}

// Add counts n now.
func (w *Window) Add(n int64) { w.AddAt(n, time.Now()) }

// AddAt counts n at the given time (for tests).
func (w *Window) AddAt(n int64, now time.Time) {
	e := epochOf(now)
	if e < 0 {
		return
	}
	s := &w.ring[e%numWindows]
	ok, own := claim(&s.epoch, e)
	if own {
		s.n.Store(0)
		s.epoch.Store(e)
	}
	if ok {
		s.n.Add(n)
	}
}

// LastMinute is the sum of what was added over the last minute (50 to
// 60 seconds, see numWindows) as seen at now.
func (w *Window) LastMinute(now time.Time) int64 {
	e := epochOf(now)
	var sum int64
	for i := range w.ring {
		s := &w.ring[i]
		ep := s.epoch.Load()
		if !recent(ep, e) {
			continue
		}
		n := s.n.Load()
		if s.epoch.Load() == ep { // not reused while read
			sum += n
		}
	}
	return sum
}
