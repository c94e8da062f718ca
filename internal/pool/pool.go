// Package pool shares a bounded set of server connections among clients.
// A client gets a server as a Lease; Lease.Release is the only place the
// pool's counters change after a grant, and it is idempotent, so deferring
// it on every path keeps the accounting exact. The pool never sees a client.
package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// Server is what the pool needs from a server connection.
type Server interface {
	// Reusable reports whether another client may use the server now.
	Reusable() bool
	// Close closes the server; safe to call twice.
	Close() error
}

// Config configures a pool. Dial is called on a context owned by the pool,
// never a waiter's, so an impatient client cannot cancel a dial that other
// clients will use. Name, Dial, Limits and Refused are fixed; the Settings
// may change later (Reconfigure).
type Config[S Server] struct {
	Name string
	// Dial logs in a new server on host (an index into Hosts; 0 when
	// Hosts is empty).
	Dial func(ctx context.Context, host int) (S, error)
	// Hosts are where the servers log in, at most MaxHosts; empty: one
	// host, which Dial knows.
	Hosts []Host
	// Balance says which host a new lease goes to.
	Balance Balance
	// TierOf, if set, puts a server's host in a tier once it is dialled:
	// the choice takes hosts of the lowest tier that can serve, the others
	// only when none of those can (prefer-standby: standbys, then the
	// primary).
	TierOf func(s S) int
	// Limits are caps shared with other pools (max_db_connections,
	// max_user_connections); nil entries are ignored.
	Limits []*Limit
	// Refused reports whether a dial error is the server refusing the
	// login (wrong password, no such database): every waiting client gets
	// it at once. Any other error (unreachable, starting up) is retried
	// with backoff while clients keep waiting, each up to its own timeout.
	Refused func(error) bool
	// Closed, if set, is told each server the pool closes and why, after
	// the close (for metrics: server connections closed by reason). A
	// server given back unusable is reason.NotReusable; the server itself
	// may know more.
	Closed func(s S, why reason.Reason)
	Settings
}

// Settings are what a reload may change in a running pool.
type Settings struct {
	Size        int
	WaitTimeout time.Duration // 0: wait until the caller's context ends
	DialTimeout time.Duration // 0: 15s, PgBouncer's server_connect_timeout
	// IdleTimeout closes servers idle longer (server_idle_timeout); 0: never.
	IdleTimeout time.Duration
	// Lifetime closes a server once a lease on it ends after it has lived
	// this long (server_lifetime), with up to 20% taken off at random so a
	// pool's servers do not all reconnect at once; 0: never.
	Lifetime time.Duration
	// MinSize servers are kept open even with no client (min_pool_size),
	// and opened again after an outage.
	MinSize int
	// ReserveSize more servers may be opened for clients that have waited
	// ReserveTimeout (reserve_pool_size, reserve_pool_timeout).
	ReserveSize    int
	ReserveTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed dials: it
	// starts at RetryMin, doubles, stops growing at RetryMax, with ±25%
	// jitter. 0: 50ms and 500ms.
	RetryMin, RetryMax time.Duration
}

// normalized fills in the defaults.
func (s Settings) normalized() Settings {
	s.Size = max(s.Size, 1)
	if s.DialTimeout <= 0 {
		s.DialTimeout = 15 * time.Second
	}
	if s.RetryMin <= 0 {
		s.RetryMin = 50 * time.Millisecond
	}
	if s.RetryMax < s.RetryMin {
		s.RetryMax = max(500*time.Millisecond, s.RetryMin)
	}
	return s
}

// ErrClosed is returned by Acquire on a closed pool.
var ErrClosed = errors.New("pool: closed")

// WaitTimeoutError says a client waited query_wait_timeout without a server.
type WaitTimeoutError struct {
	Pool    string
	Timeout time.Duration
}

func (e *WaitTimeoutError) Error() string {
	return fmt.Sprintf("query_wait_timeout: no server connection in pool %q became free within %s", e.Pool, e.Timeout)
}

// Pool is a bounded set of server connections for one database and user.
type Pool[S Server] struct {
	cfg     Config[S]       // its Settings are zeroed: mu.set is the current copy
	ctx     context.Context // cancelled by Close; parent of every dial
	cancel  context.CancelFunc
	wg      sync.WaitGroup // dial, retry and janitor goroutines
	retuned chan struct{}  // tells the janitor the settings changed
	spare   sync.Pool      // of *waiter[S] (newWaiter, recycle)

	// mu guards the pool state; it is never held across I/O.
	mu struct {
		sync.Mutex
		set        Settings
		idle       []held[S] // most recently parked last
		active     int
		connecting int
		closing    int
		waiters    waitQueue[S] // oldest first
		expiry     expiry
		closed     bool
		paused     bool // Pause: no server is handed out or kept
		draining   bool // Drain: servers nobody waits for are closed
		janitor    bool // the janitor runs
		// renewBefore (Reconnect): servers born before it are closed as
		// they come back; stale counts those still leased.
		renewBefore time.Time
		stale       int
		st          counters
		hosts       []hostState // at least one; each with its own outage
		next        int         // where pickLocked's round robin starts
	}
}

type counters struct {
	acquires, waits, timeouts, dialErrors int64
	waitTotal, waitMax                    time.Duration
	lastDialErr                           error
	// When the last failed and the last good dial started: the error is
	// current only if no dial that started after it succeeded.
	lastErrStart, lastOKStart time.Time
}

// held is a server with what the pool knows of its life.
type held[S Server] struct {
	s      S
	born   time.Time
	jitter float64   // share of the lifetime taken off this server, in [0, 0.2)
	since  time.Time // parked idle since
	host   int       // index of its host
}

// New returns an empty pool; servers are dialled on demand.
func New[S Server](cfg Config[S]) *Pool[S] {
	var limits []*Limit
	for _, l := range cfg.Limits {
		if l != nil {
			limits = append(limits, l)
		}
	}
	cfg.Limits = limits
	p := &Pool[S]{cfg: cfg, retuned: make(chan struct{}, 1)}
	p.mu.set = cfg.Settings.normalized()
	p.mu.hosts = hostsOf(cfg.Hosts)
	p.cfg.Settings = Settings{}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, l := range limits {
		l.join(p)
	}
	p.mu.Lock()
	p.startJanitorLocked()
	p.mu.Unlock()
	return p
}

// Name is the pool's name, as used in errors and stats.
func (p *Pool[S]) Name() string { return p.cfg.Name }

// TryAcquire leases an idle server if one is free and nobody waits for
// it, without blocking; otherwise it returns nil.
func (p *Pool[S]) TryAcquire() *Lease[S] {
	p.mu.Lock()
	h, ok := p.takeIdleLocked()
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return p.newLease(h, time.Now())
}

// takeIdleLocked grants the most recently parked server (of the host the
// balance chooses among several), if there is one and no client waits
// ahead.
func (p *Pool[S]) takeIdleLocked() (held[S], bool) {
	if p.mu.closed || p.mu.paused || len(p.mu.idle) == 0 || p.mu.waiters.Len() > 0 {
		return held[S]{}, false
	}
	i := p.idleIndexLocked()
	if i < 0 {
		return held[S]{}, false
	}
	h := p.mu.idle[i]
	p.mu.idle = slices.Delete(p.mu.idle, i, i+1) // the rest keep their order
	p.grantLocked(h.host)
	p.mu.st.acquires++
	if len(p.mu.hosts) > 1 {
		p.rebalanceLocked(h.host)
	}
	return h, true
}

// Acquire leases a server, waiting in FIFO order up to the pool's wait
// timeout or until ctx ends. The caller must Release the lease.
func (p *Pool[S]) Acquire(ctx context.Context) (*Lease[S], error) {
	start := time.Now()
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if h, ok := p.takeIdleLocked(); ok {
		p.mu.Unlock()
		return p.newLease(h, start), nil
	}
	w := p.newWaiter(start)
	p.queueLocked(w, p.mu.set.WaitTimeout) // a reload changes it for later waits only
	blocked := p.dialLocked()
	p.mu.Unlock()
	p.reclaim(blocked)

	select {
	case g := <-w.ch:
		p.recycle(w)
		if g.expired {
			return nil, g.err
		}
		return p.granted(g, start)
	case <-ctx.Done():
		lease, err := p.abandon(w, context.Cause(ctx))
		p.recycle(w)
		return lease, err
	}
}

func (p *Pool[S]) granted(g grant[S], start time.Time) (*Lease[S], error) {
	now := time.Now()
	waited := now.Sub(start)
	p.mu.Lock()
	p.mu.st.waits++
	p.mu.st.waitTotal += waited
	p.mu.st.waitMax = max(p.mu.st.waitMax, waited)
	if g.err == nil {
		p.mu.st.acquires++
	}
	p.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	return p.newLease(g.srv, now), nil
}

// ErrNotNeeded is the cause a caller ends its Acquire's context with when
// it no longer needs the server (it got what it wanted elsewhere): such a
// wait is not counted among those that gave up (Stats.Timeouts).
var ErrNotNeeded = errors.New("pool: the server is no longer needed")

// abandon leaves the queue. If a grant raced with the caller's context,
// the server was already counted as active for us, so it goes back through
// release; either way w's channel is empty after.
func (p *Pool[S]) abandon(w *waiter[S], cause error) (*Lease[S], error) {
	gaveUp := int64(1)
	if errors.Is(cause, ErrNotNeeded) {
		gaveUp = 0 // the caller got what it waited for elsewhere
	}
	p.mu.Lock()
	if w.queued {
		p.mu.waiters.remove(w)
		p.mu.st.timeouts += gaveUp
		p.mu.Unlock()
		return nil, cause
	}
	p.mu.Unlock()
	g := <-w.ch
	if g.expired {
		return nil, g.err // timed out first, and counted then
	}
	p.mu.Lock()
	p.mu.st.timeouts += gaveUp
	p.mu.Unlock()
	if g.err == nil {
		p.release(g.srv)
	}
	return nil, cause
}

// dialLocked starts dials for waiters that no idle server or pending dial
// will serve, within the pool size and the shared limits. It returns the
// limit that refused a slot, if any; the caller passes it to reclaim after
// unlocking.
// A host backing off after a failed dial (its timer dials again), or still
// unreachable with a probe in flight, gets none. A probe to an unreachable
// host is counted for nobody: the clients waiting get dials to the others
// at the same time.
func (p *Pool[S]) dialLocked() (blocked *Limit) {
	if p.mu.paused {
		return nil
	}
	total := p.totalLocked()
	size := p.sizeLocked()
	need := p.mu.waiters.Len()
	for i := range p.mu.hosts {
		if h := &p.mu.hosts[i]; !h.out.down {
			need -= h.connecting
		}
	}
	for need > 0 && total < size {
		host := p.dialHostLocked()
		if host < 0 {
			return nil
		}
		if blocked = takeAll(p.cfg.Limits, p); blocked != nil {
			return blocked
		}
		total++
		if !p.mu.hosts[host].out.down {
			need--
		}
		p.startDialLocked(host)
	}
	return nil
}

// reclaim asks the other pools under a limit that refused us to close an
// idle server, so our waiting clients get the slot.
func (p *Pool[S]) reclaim(blocked *Limit) {
	if blocked != nil {
		blocked.reclaim(p)
	}
}

// retry is called by a Limit when a slot frees.
func (p *Pool[S]) retry() {
	p.mu.Lock()
	var blocked *Limit
	if !p.mu.closed {
		blocked = p.dialLocked()
	}
	p.mu.Unlock()
	p.reclaim(blocked)
}

// evictIdle closes one idle server for another pool under a shared limit.
func (p *Pool[S]) evictIdle() bool {
	p.mu.Lock()
	if len(p.mu.idle) == 0 || p.mu.closed {
		p.mu.Unlock()
		return false
	}
	s := p.popOldestIdleLocked() // the one least recently useful
	p.mu.Unlock()
	p.closeServer(s, reason.SharedLimit)
	return true
}

// closeServer closes a server counted as closing, then frees its slot.
func (p *Pool[S]) closeServer(s S, why reason.Reason) {
	_ = s.Close()
	if p.cfg.Closed != nil {
		p.cfg.Closed(s, why)
	}
	p.mu.Lock()
	p.mu.closing--
	var blocked *Limit
	if !p.mu.closed {
		blocked = p.dialLocked()
	}
	p.mu.Unlock()
	giveAll(p.cfg.Limits)
	p.reclaim(blocked)
}

// startDialLocked dials one server to host; the caller took its limit
// slots.
func (p *Pool[S]) startDialLocked(host int) {
	p.mu.connecting++
	p.mu.hosts[host].connecting++
	p.wg.Add(1)
	go p.dial(p.mu.set.DialTimeout, host)
}

func (p *Pool[S]) dial(timeout time.Duration, host int) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	started := time.Now()
	s, err := p.cfg.Dial(ctx, host)
	cancel()
	p.mu.Lock()
	p.mu.connecting--
	p.mu.hosts[host].connecting--
	if err != nil {
		p.mu.st.lastErrStart = later(p.mu.st.lastErrStart, started)
		p.dialFailedLocked(host, err)
		var blocked *Limit
		if !p.mu.closed {
			blocked = p.dialLocked()
		}
		p.mu.Unlock()
		giveAll(p.cfg.Limits)
		p.reclaim(blocked)
		return
	}
	p.mu.hosts[host].out.recovered()
	if p.cfg.TierOf != nil {
		p.mu.hosts[host].tier = p.cfg.TierOf(s)
	}
	p.mu.st.lastOKStart = later(p.mu.st.lastOKStart, started)
	h := newHeld(s, time.Now(), host)
	if why := p.dropLocked(h, h.born); why != reason.None {
		p.mu.closing++
		p.mu.Unlock()
		p.closeServer(s, why)
		return
	}
	parked := p.putLocked(h)
	p.mu.Unlock()
	if parked {
		p.yieldIdle()
	}
}

func (p *Pool[S]) popWaiterLocked() *waiter[S] {
	w := p.mu.waiters.Front()
	if w != nil {
		p.mu.waiters.remove(w)
	}
	return w
}

// putLocked hands a usable server to the oldest waiter, or parks it idle
// and reports so.
func (p *Pool[S]) putLocked(h held[S]) (parked bool) {
	if w := p.popWaiterLocked(); w != nil {
		p.grantLocked(h.host)
		w.ch <- grant[S]{srv: h}
		return false
	}
	h.since = time.Now() // only when parked: a hand-over reads no clock
	p.mu.idle = append(p.mu.idle, h)
	return true
}

// yieldIdle gives up an idle server when another pool under a shared limit
// waits for a slot: an idle server must not hold the cap hostage.
func (p *Pool[S]) yieldIdle() {
	for _, l := range p.cfg.Limits {
		if l.wanted(p) {
			p.evictIdle()
			return
		}
	}
}

// dropLocked says why a server coming back from a lease or a dial may not
// serve again, counted out of the pool's servers, or reason.None to keep
// it: not once the pool is closed or paused, nor past the server's
// lifetime, nor while the pool drains and no client waits, nor when the
// pool holds its whole size (reserve included) without it, as after a
// shrink or under a lowered shared cap.
func (p *Pool[S]) dropLocked(h held[S], now time.Time) reason.Reason {
	switch {
	case p.mu.closed:
		return reason.PoolClosed
	case p.mu.paused:
		return reason.PoolPaused
	case p.mu.hosts[h.host].down:
		return reason.HostDown
	case h.born.Before(p.mu.renewBefore):
		return reason.Reconnect
	case h.expired(now, p.mu.set.Lifetime):
		return reason.Lifetime
	case p.mu.draining && p.mu.waiters.Len() == 0:
		return reason.PoolDraining
	case overAny(p.cfg.Limits):
		return reason.SharedLimit
	case p.mu.active+len(p.mu.idle)+p.mu.connecting >= p.mu.set.Size+p.mu.set.ReserveSize:
		return reason.PoolOverSize
	}
	return reason.None
}

// release takes a server back from a client: reuse it if it says it is
// clean and the pool keeps it, otherwise close it and make room for a
// fresh one.
func (p *Pool[S]) release(h held[S]) {
	s := h.s
	p.mu.Lock()
	p.mu.active--
	p.mu.hosts[h.host].active--
	if h.born.Before(p.mu.renewBefore) {
		p.mu.stale--
	}
	why, to := reason.NotReusable, -1
	if s.Reusable() {
		var now time.Time // read only for a lifetime: a release reads no clock
		if p.mu.set.Lifetime > 0 {
			now = time.Now()
		}
		why = p.dropLocked(h, now)
		if why == reason.None && len(p.mu.hosts) > 1 {
			if to = p.moveLocked(h.host); to >= 0 {
				why = reason.HostRebalance
			}
		}
	}
	if why == reason.None {
		parked := p.putLocked(h)
		p.mu.Unlock()
		if parked {
			p.yieldIdle()
		}
		return
	}
	// Count the server as closing until its socket is gone, so a
	// replacement never overlaps it at the server.
	p.mu.closing++
	p.mu.Unlock()
	p.closeServer(s, why)
	if to >= 0 {
		p.moved(to)
	}
}

// Close fails every waiter, closes idle servers and waits for dials to end.
// Leased servers are closed when their leases are released.
func (p *Pool[S]) Close() {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.mu.closed = true
	for w := p.popWaiterLocked(); w != nil; w = p.popWaiterLocked() {
		w.ch <- grant[S]{err: ErrClosed}
	}
	p.stopRetryLocked()
	p.stopExpiryLocked()
	idle := p.evictAllIdleLocked()
	p.mu.Unlock()
	p.cancel()
	for _, s := range idle {
		p.closeServer(s, reason.PoolClosed)
	}
	p.wg.Wait()
	for _, l := range p.cfg.Limits {
		l.leave(p)
	}
}
