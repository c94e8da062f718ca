package pool

import (
	"math/rand/v2"
	"time"
)

// expiry is when a server dialled now reaches its lifetime: Lifetime less
// up to 20%, so servers born together do not all go at once.
func (p *Pool[S]) expiry(now time.Time) time.Time {
	if p.cfg.Lifetime <= 0 {
		return time.Time{}
	}
	jitter := time.Duration(rand.Int64N(int64(p.cfg.Lifetime)/5 + 1))
	return now.Add(p.cfg.Lifetime - jitter)
}

func (h held[S]) expired(now time.Time) bool {
	return !h.expires.IsZero() && !now.Before(h.expires)
}

// sizeLocked is how many servers the pool may hold now: its size, plus the
// reserve once the oldest waiting client has waited ReserveTimeout.
func (p *Pool[S]) sizeLocked(now time.Time) int {
	if p.cfg.ReserveSize > 0 {
		if e := p.mu.waiters.Front(); e != nil && now.Sub(e.Value.(*waiter[S]).since) >= p.cfg.ReserveTimeout {
			return p.cfg.Size + p.cfg.ReserveSize
		}
	}
	return p.cfg.Size
}

// janitorPeriod is how often maintain runs: often enough for the shortest
// timeout it enforces, at most once a second.
func (p *Pool[S]) janitorPeriod() time.Duration {
	period := time.Second
	for _, d := range []time.Duration{p.cfg.IdleTimeout, p.cfg.Lifetime, p.cfg.ReserveTimeout} {
		if d > 0 {
			period = min(period, d/4)
		}
	}
	return max(period, 5*time.Millisecond)
}

// startJanitor runs maintain periodically when the pool has timeouts or a
// minimum size to keep; Close stops it.
func (p *Pool[S]) startJanitor() {
	if p.cfg.IdleTimeout <= 0 && p.cfg.Lifetime <= 0 && p.cfg.MinSize <= 0 && p.cfg.ReserveSize <= 0 {
		return
	}
	t := time.NewTicker(p.janitorPeriod())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer t.Stop()
		for {
			select {
			case <-p.ctx.Done():
				return
			case now := <-t.C:
				p.maintain(now)
			}
		}
	}()
}

// maintain closes idle servers past server_idle_timeout (down to
// min_pool_size) or past their lifetime, opens servers up to
// min_pool_size, and dials reserve servers for clients waiting long.
func (p *Pool[S]) maintain(now time.Time) {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return
	}
	var doomed []S
	keep := p.mu.idle[:0]
	total := p.mu.active + len(p.mu.idle) + p.mu.connecting + p.mu.closing
	for _, h := range p.mu.idle {
		idleTooLong := p.cfg.IdleTimeout > 0 && now.Sub(h.since) >= p.cfg.IdleTimeout && total-len(doomed) > p.cfg.MinSize
		if h.expired(now) || idleTooLong {
			doomed = append(doomed, h.s)
			continue
		}
		keep = append(keep, h)
	}
	clear(p.mu.idle[len(keep):])
	p.mu.idle = keep
	p.mu.closing += len(doomed)
	blocked := p.dialLocked() // reserve servers, once clients waited long enough
	for n := p.cfg.MinSize - (total - len(doomed)); blocked == nil && n > 0 && !p.mu.out.retrying && (!p.mu.out.down || p.mu.connecting == 0); n-- {
		if blocked = takeAll(p.cfg.Limits, p); blocked != nil {
			break // a shared cap is full: reclaim below
		}
		p.mu.connecting++
		p.wg.Add(1)
		go p.dial()
		if p.mu.out.down {
			break // one probe at a time while the server is unreachable
		}
	}
	p.mu.Unlock()
	for _, s := range doomed {
		p.closeServer(s)
	}
	p.reclaim(blocked)
}
