package pool

import (
	"sync"
	"sync/atomic"
)

// Limit caps the servers of several pools together: max_db_connections
// counts every pool of a database, max_user_connections every pool of a
// user. A pool takes a slot before it dials and gives it back when the
// server is gone. Pools that found no slot are woken when one frees.
//
// Lock order: a pool's mu may be held while calling take (never the other
// way round); Limit never calls into a pool while holding its own lock.
type Limit struct {
	name string
	// max is the cap; <= 0: none. It is written under mu, and read without
	// it where no cap means nothing to do, so that pools without caps
	// (the default) share no lock when servers come back.
	max atomic.Int64
	mu  struct {
		sync.Mutex
		used    int
		members []member
		waiting map[member]struct{}
	}
}

// member is what a Limit needs from a pool.
type member interface {
	// retry lets a pool that was refused a slot try to dial again.
	retry()
	// evictIdle closes one idle server, if the pool has one.
	evictIdle() bool
}

// NewLimit returns a cap of max servers; max <= 0 means no cap, which
// SetMax may change later.
func NewLimit(name string, max int) *Limit {
	l := &Limit{name: name}
	l.max.Store(int64(max))
	l.mu.waiting = make(map[member]struct{})
	return l
}

// SetMax changes the cap (a reload). A higher cap lets waiting pools dial
// at once. Under a lower one, idle servers of member pools close now, and
// leased ones as they come back, until the servers fit.
func (l *Limit) SetMax(max int) {
	l.mu.Lock()
	l.max.Store(int64(max))
	waiting := l.mu.waiting
	l.mu.waiting = make(map[member]struct{})
	members := append([]member(nil), l.mu.members...)
	l.mu.Unlock()
	for m := range waiting {
		m.retry()
	}
	for _, m := range members {
		for l.over() && m.evictIdle() {
		}
	}
}

// over reports whether more slots are taken than the cap allows.
func (l *Limit) over() bool {
	max := l.max.Load()
	if max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.mu.used) > max
}

// overAny reports whether any of limits is over its cap.
func overAny(limits []*Limit) bool {
	for _, l := range limits {
		if l.over() {
			return true
		}
	}
	return false
}

// Used reports the slots taken.
func (l *Limit) Used() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.used
}

func (l *Limit) join(m member) {
	l.mu.Lock()
	l.mu.members = append(l.mu.members, m)
	l.mu.Unlock()
}

func (l *Limit) leave(m member) {
	l.mu.Lock()
	for i, x := range l.mu.members {
		if x == m {
			l.mu.members = append(l.mu.members[:i], l.mu.members[i+1:]...)
			break
		}
	}
	delete(l.mu.waiting, m)
	l.mu.Unlock()
}

// take reserves a slot for m, or records m as waiting for one; with a nil
// m it records nothing.
func (l *Limit) take(m member) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.max.Load(); max <= 0 || int64(l.mu.used) < max {
		l.mu.used++
		return true
	}
	if m != nil {
		l.mu.waiting[m] = struct{}{}
	}
	return false
}

// give frees a slot and lets every waiting pool try again.
func (l *Limit) give() {
	l.mu.Lock()
	l.mu.used--
	waiting := l.mu.waiting
	l.mu.waiting = make(map[member]struct{})
	l.mu.Unlock()
	for m := range waiting {
		m.retry()
	}
}

// reclaim closes an idle server of some pool other than m, so that m, which
// has waiting clients, gets the slot: idle servers must not hold a shared
// cap hostage.
func (l *Limit) reclaim(m member) {
	l.mu.Lock()
	members := append([]member(nil), l.mu.members...)
	l.mu.Unlock()
	for _, other := range members {
		if other != m && other.evictIdle() {
			return
		}
	}
}

// wanted reports whether a pool other than m waits for a slot.
func (l *Limit) wanted(m member) bool {
	if l.max.Load() <= 0 {
		return false // nobody waits for a slot without a cap
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range l.mu.waiting {
		if w != m {
			return true
		}
	}
	return false
}

// untake returns a slot without waking anyone: it is called under a pool's
// lock, where waking pools could deadlock. (A pool refused in that short
// window retries at the next give or its next Acquire.)
func (l *Limit) untake() {
	l.mu.Lock()
	l.mu.used--
	l.mu.Unlock()
}

// takeAll reserves a slot in every limit or in none; a nil m is recorded
// as waiting nowhere.
func takeAll(limits []*Limit, m member) (blocked *Limit) {
	for i, l := range limits {
		if !l.take(m) {
			for _, prev := range limits[:i] {
				prev.untake()
			}
			return l
		}
	}
	return nil
}

func giveAll(limits []*Limit) {
	for _, l := range limits {
		l.give()
	}
}
