package pool

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// UnreachableError says a client waited its whole wait timeout while the
// server could not be reached: different from a full pool (WaitTimeoutError)
// and reported differently (08006, not 53300).
type UnreachableError struct {
	Pool   string
	Waited time.Duration
	Err    error // the last dial error, which names the server
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("server for pool %q unreachable for %s: %v", e.Pool, e.Waited, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// outage is a pool's view of a server it cannot reach.
type outage struct {
	down     bool          // the last dial failed and none succeeded since
	retrying bool          // a retry timer is pending
	backoff  time.Duration // the next retry's delay, before jitter
	timer    *time.Timer
}

func (o *outage) recovered() {
	o.down = false
	o.backoff = 0
}

// dialFailedLocked handles a failed dial to host. A refusal reaches every
// waiting client now, as the server would have answered each of them the
// same; an unreachable host is retried with backoff while clients keep
// waiting, and the other hosts serve meanwhile.
func (p *Pool[S]) dialFailedLocked(host int, err error) {
	p.mu.st.dialErrors++
	p.mu.st.lastDialErr = err
	o := &p.mu.hosts[host].out
	if p.cfg.Refused != nil && p.cfg.Refused(err) {
		o.recovered()
		for w := p.popWaiterLocked(); w != nil; w = p.popWaiterLocked() {
			w.ch <- grant[S]{err: err}
		}
		return
	}
	o.down = true
	if p.mu.closed || o.retrying {
		return
	}
	o.backoff = min(max(2*o.backoff, p.mu.set.RetryMin), p.mu.set.RetryMax)
	delay := o.backoff*3/4 + rand.N(o.backoff/2+1)
	o.retrying = true
	p.wg.Add(1)
	o.timer = time.AfterFunc(delay, func() {
		defer p.wg.Done()
		p.mu.Lock()
		o.retrying = false
		p.mu.Unlock()
		p.retry()
	})
}

// stopRetryLocked cancels the pending retries (the pool is closing).
func (p *Pool[S]) stopRetryLocked() {
	for i := range p.mu.hosts {
		p.stopHostRetryLocked(i)
	}
}

// stopHostRetryLocked cancels host i's pending retry, if its timer has not
// fired yet.
func (p *Pool[S]) stopHostRetryLocked(i int) {
	if o := &p.mu.hosts[i].out; o.retrying && o.timer.Stop() {
		o.retrying = false
		p.wg.Done()
	}
}
