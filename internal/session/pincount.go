package session

import "sync/atomic"

// PinCount counts a pool's pinned clients, bounded by Max.
type PinCount struct {
	n   atomic.Int64
	Max int64
}

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
		if p.Max > 0 && n >= p.Max {
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
