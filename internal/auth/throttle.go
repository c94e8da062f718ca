package auth

import (
	"sync"
	"time"
)

// Throttle slows password guessing: each failed login from an address
// within Window of its last failure doubles the wait before the next
// failure is answered, from Base up to Max; a success or a quiet Window
// forgets the address. The table is bounded (MaxAddrs): when full, an
// address is dropped to make room, so a flood of addresses costs memory
// only up to the bound.
type Throttle struct {
	Base, Max, Window time.Duration
	MaxAddrs          int
	mu                struct {
		sync.Mutex
		m map[string]failures
	}
}

type failures struct {
	n    int
	last time.Time
}

// NewThrottle returns a Throttle with pgvalve's defaults: 100 ms doubling
// to 5 s, forgotten after a quiet minute, 10,000 addresses.
func NewThrottle() *Throttle {
	t := &Throttle{Base: 100 * time.Millisecond, Max: 5 * time.Second, Window: time.Minute, MaxAddrs: 10_000}
	t.mu.m = make(map[string]failures)
	return t
}

// Failed records a failed login from addr at now and returns how long to
// wait before answering it: zero for the first in a while.
func (t *Throttle) Failed(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.mu.m[addr]
	if !ok || now.Sub(f.last) > t.Window {
		f = failures{}
		if !ok && len(t.mu.m) >= t.MaxAddrs {
			for k := range t.mu.m { // any one: a bound, not a ranking
				delete(t.mu.m, k)
				break
			}
		}
	}
	f.n++
	f.last = now
	t.mu.m[addr] = f
	if f.n == 1 {
		return 0
	}
	d := t.Base << min(f.n-2, 30)
	return min(d, t.Max)
}

// Succeeded forgets addr's failures.
func (t *Throttle) Succeeded(addr string) {
	t.mu.Lock()
	delete(t.mu.m, addr)
	t.mu.Unlock()
}

// Len is how many addresses it remembers.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mu.m)
}
