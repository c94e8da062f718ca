package pool

import (
	"sync/atomic"
	"time"
)

// Lease is one client's hold on one server. Release returns it; it is safe
// to call more than once and must be deferred on every path.
type Lease[S Server] struct {
	pool     *Pool[S]
	srv      held[S]
	acquired time.Time
	done     atomic.Bool
}

// newLease grants h, acquired at now.
func (p *Pool[S]) newLease(h held[S], now time.Time) *Lease[S] {
	return &Lease[S]{pool: p, srv: h, acquired: now}
}

// Server is the leased server connection. It must not be used after Release.
func (l *Lease[S]) Server() S { return l.srv.s }

// Host is the index of the leased server's host (Config.Hosts).
func (l *Lease[S]) Host() int { return l.srv.host }

// Acquired is when the lease was granted.
func (l *Lease[S]) Acquired() time.Time { return l.acquired }

// Release gives the server back. The pool reuses it only if it reports
// itself reusable; anything else is closed.
func (l *Lease[S]) Release() {
	if !l.done.CompareAndSwap(false, true) {
		return
	}
	l.pool.release(l.srv)
}
