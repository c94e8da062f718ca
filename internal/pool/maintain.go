package pool

import (
	"math/rand/v2"
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// newHeld is a server dialled at now, with its share of lifetime jitter.
func newHeld[S Server](s S, now time.Time, host int) held[S] {
	return held[S]{s: s, born: now, jitter: rand.Float64() / 5, host: host}
}

// lifetime is how long this server may live under the pool's lifetime:
// less up to 20%, so servers born together do not all go at once. It is
// computed from the current setting, so a reload applies to servers
// already open.
func (h held[S]) lifetime(limit time.Duration) time.Duration {
	return limit - time.Duration(h.jitter*float64(limit))
}

func (h held[S]) expired(now time.Time, limit time.Duration) bool {
	return limit > 0 && now.Sub(h.born) >= h.lifetime(limit)
}

// totalLocked is every server the pool holds, opens or closes: what its
// size bounds.
func (p *Pool[S]) totalLocked() int {
	return p.mu.active + len(p.mu.idle) + p.mu.connecting + p.mu.closing
}

// sizeLocked is how many servers the pool may hold now: its size, plus the
// reserve once the oldest waiting client has waited ReserveTimeout.
func (p *Pool[S]) sizeLocked() int {
	set := &p.mu.set
	if set.ReserveSize > 0 {
		if w := p.mu.waiters.Front(); w != nil && time.Since(w.since) >= set.ReserveTimeout {
			return set.Size + set.ReserveSize
		}
	}
	return set.Size
}

// janitorPeriod is how often maintain runs: often enough for the shortest
// timeout it enforces, at most once a second.
func (s Settings) janitorPeriod() time.Duration {
	period := time.Second
	for _, d := range []time.Duration{s.IdleTimeout, s.Lifetime, s.ReserveTimeout} {
		if d > 0 {
			period = min(period, d/4)
		}
	}
	return max(period, 5*time.Millisecond)
}

// startJanitorLocked runs maintain periodically once the pool has timeouts
// or a minimum size to keep; Close stops it. It is called again after a
// reload, which may give the pool its first such setting.
func (p *Pool[S]) startJanitorLocked() {
	set := p.mu.set
	if p.mu.janitor || p.mu.closed || (set.IdleTimeout <= 0 && set.Lifetime <= 0 && set.MinSize <= 0 && set.ReserveSize <= 0) {
		return
	}
	p.mu.janitor = true
	p.wg.Add(1)
	go p.janitor(set.janitorPeriod())
}

func (p *Pool[S]) janitor(period time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.retuned:
			p.mu.Lock()
			period = p.mu.set.janitorPeriod()
			p.mu.Unlock()
			t.Reset(period)
		case now := <-t.C:
			p.maintain(now)
		}
	}
}

// maintain closes idle servers past server_idle_timeout (down to
// min_pool_size) or past their lifetime, opens servers up to
// min_pool_size, and dials reserve servers for clients waiting long. A
// paused or draining pool keeps no minimum.
func (p *Pool[S]) maintain(now time.Time) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	set := p.mu.set
	if p.mu.paused || p.mu.draining {
		set.MinSize = 0
	}
	var doomed []S
	var why []reason.Reason // why[i] is why doomed[i] closes
	keep := p.mu.idle[:0]
	total := p.totalLocked()
	for _, h := range p.mu.idle {
		idleTooLong := set.IdleTimeout > 0 && now.Sub(h.since) >= set.IdleTimeout && total-len(doomed) > set.MinSize
		if expired := h.expired(now, set.Lifetime); expired || idleTooLong {
			doomed = append(doomed, h.s)
			why = append(why, reason.IdleTimeout)
			if expired {
				why[len(why)-1] = reason.Lifetime
			}
			continue
		}
		keep = append(keep, h)
	}
	clear(p.mu.idle[len(keep):])
	p.mu.idle = keep
	p.mu.closing += len(doomed)
	blocked := p.dialLocked() // reserve servers, once clients waited long enough
	for n := set.MinSize - (total - len(doomed)); blocked == nil && n > 0; n-- {
		host := p.dialHostLocked() // none backing off; one probe to an unreachable one
		if host < 0 {
			break
		}
		if blocked = takeAll(p.cfg.Limits, p); blocked != nil {
			break // a shared cap is full: reclaim below
		}
		p.startDialLocked(host)
	}
	p.mu.Unlock()
	for i, s := range doomed {
		p.closeServer(s, why[i])
	}
	p.reclaim(blocked)
}
