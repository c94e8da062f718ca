package session

import "sync/atomic"

// PinCount counts a pool's pinned clients, bounded by max_pinned_servers
// (0: no bound); a reload may change the bound.
type PinCount struct {
	n, max atomic.Int64
}

// NewPinCount is a count bounded by max.
func NewPinCount(max int) *PinCount {
	p := &PinCount{}
	p.max.Store(int64(max))
	return p
}

// Max is the bound now.
func (p *PinCount) Max() int64 {
	if p == nil {
		return 0
	}
	return p.max.Load()
}

// SetMax changes the bound; clients pinned past a lower one stay.
func (p *PinCount) SetMax(max int) { p.max.Store(int64(max)) }

// Pinned is how many of the pool's clients are pinned now.
func (p *PinCount) Pinned() int64 {
	if p == nil {
		return 0
	}
	return p.n.Load()
}

// take counts one more pinned client unless the bound is reached.
func (p *PinCount) take() bool {
	if p == nil {
		return true
	}
	for {
		n := p.n.Load()
		if max := p.max.Load(); max > 0 && n >= max {
			return false
		}
		if p.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// force counts one more pinned client even past the bound (a statement
// already on its way, inside a transaction).
func (p *PinCount) force() {
	if p != nil {
		p.n.Add(1)
	}
}

func (p *PinCount) put() {
	if p != nil {
		p.n.Add(-1)
	}
}
