package pool

import (
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// Reconfigure applies new settings to a running pool. A bigger pool dials
// for waiting clients at once. A smaller one closes idle servers over its
// new size now and leased ones as they come back, never under a client.
// Clients already waiting keep the wait timeout they started with.
func (p *Pool[S]) Reconfigure(s Settings) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	p.mu.set = s.normalized()
	var doomed []S
	for len(p.mu.idle) > 0 && p.mu.active+len(p.mu.idle)+p.mu.connecting > p.mu.set.Size+p.mu.set.ReserveSize {
		doomed = append(doomed, p.popOldestIdleLocked())
	}
	blocked := p.dialLocked()
	p.startJanitorLocked()
	p.mu.Unlock()
	select {
	case p.retuned <- struct{}{}:
	default: // the janitor has a wake-up pending already
	}
	for _, s := range doomed {
		p.closeServer(s, reason.PoolOverSize)
	}
	p.reclaim(blocked)
}

// Pause stops handing out servers, as PgBouncer's PAUSE: idle servers
// close now, leased ones when their clients give them back (at the end of
// a transaction in transaction pooling, at disconnect in session pooling),
// and nothing is dialled. Clients that need a server wait in the queue,
// each up to its wait timeout, until Resume.
func (p *Pool[S]) Pause() { p.enter(&p.mu.paused, reason.PoolPaused) }

// Resume ends a Pause: waiting clients get servers dialled for them.
func (p *Pool[S]) Resume() {
	p.mu.Lock()
	if p.mu.closed || !p.mu.paused {
		p.mu.Unlock()
		return
	}
	p.mu.paused = false
	blocked := p.dialLocked()
	p.mu.Unlock()
	p.reclaim(blocked)
}

// Reconnect renews the pool's servers, as PgBouncer's RECONNECT: idle
// ones close now, leased ones when their clients give them back (never
// under a client), and new ones are dialled as clients need them.
func (p *Pool[S]) Reconnect() {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	p.mu.renewBefore = time.Now()
	p.mu.stale = p.mu.active // every leased server was born before now
	idle := p.evictAllIdleLocked()
	blocked := p.dialLocked()
	p.mu.Unlock()
	for _, s := range idle {
		p.closeServer(s, reason.Reconnect)
	}
	p.reclaim(blocked)
}

// Drain retires a pool whose route changed or went away: it goes on
// serving the clients it has, but closes its idle servers now and each
// server given back that no client waits for, and keeps no minimum. The
// owner closes it once its last client has left.
func (p *Pool[S]) Drain() { p.enter(&p.mu.draining, reason.PoolDraining) }

// enter turns on state (p.mu.paused or p.mu.draining), under which the
// pool parks no server (dropLocked), and closes the idle ones it has for
// why.
func (p *Pool[S]) enter(state *bool, why reason.Reason) {
	p.mu.Lock()
	if p.mu.closed || *state {
		p.mu.Unlock()
		return
	}
	*state = true
	idle := p.evictAllIdleLocked()
	p.mu.Unlock()
	for _, s := range idle {
		p.closeServer(s, why)
	}
}

// popOldestIdleLocked takes the idle server parked longest, counted as
// closing; the caller closes it with closeServer after unlocking.
func (p *Pool[S]) popOldestIdleLocked() S {
	h := p.mu.idle[0]
	p.mu.idle = append(p.mu.idle[:0], p.mu.idle[1:]...)
	p.mu.closing++
	return h.s
}

// evictAllIdleLocked takes every idle server, counted as closing; the
// caller closes them with closeServer after unlocking.
func (p *Pool[S]) evictAllIdleLocked() []S {
	out := make([]S, 0, len(p.mu.idle))
	for _, h := range p.mu.idle {
		out = append(out, h.s)
	}
	clear(p.mu.idle)
	p.mu.idle = p.mu.idle[:0]
	p.mu.closing += len(out)
	return out
}
