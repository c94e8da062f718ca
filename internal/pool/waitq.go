package pool

import (
	"time"
)

// waiter is one client queued for a server. Waiters are reused (Pool.spare)
// so that a wait, the common case when clients outnumber servers, costs no
// allocation: one is only put back once its channel is drained and no
// queue links to it.
type waiter[S Server] struct {
	ch         chan grant[S] // buffered: a grant never blocks the granter
	next, prev *waiter[S]
	queued     bool      // in the pool's queue: not yet granted, expired or removed
	since      time.Time // queued at
	deadline   time.Time // query_wait_timeout ends the wait then; zero: no limit
}

type grant[S Server] struct {
	srv held[S]
	err error
	// expired: err is the pool's wait timeout, already counted.
	expired bool
}

// waitQueue is the pool's FIFO of waiters, linked through the waiters
// themselves so that queueing allocates nothing.
type waitQueue[S Server] struct {
	head, tail *waiter[S]
	n          int
}

func (q *waitQueue[S]) Len() int { return q.n }

func (q *waitQueue[S]) Front() *waiter[S] { return q.head }

func (q *waitQueue[S]) pushBack(w *waiter[S]) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue[S]) remove(w *waiter[S]) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n--
}

// newWaiter returns an empty waiter queued at now.
func (p *Pool[S]) newWaiter(now time.Time) *waiter[S] {
	w, _ := p.spare.Get().(*waiter[S])
	if w == nil {
		w = &waiter[S]{ch: make(chan grant[S], 1)}
	}
	w.since, w.deadline = now, time.Time{}
	return w
}

// recycle takes back a waiter whose channel is empty and which no queue holds.
func (p *Pool[S]) recycle(w *waiter[S]) { p.spare.Put(w) }

// queueLocked queues w, to wait at most wait (0: no limit). One timer per
// pool ends waits (expireDue), instead of one per wait: in FIFO order with
// one timeout the oldest waiter is always the next to expire, so the timer
// is armed once per wait timeout, not once per wait.
func (p *Pool[S]) queueLocked(w *waiter[S], wait time.Duration) {
	p.mu.waiters.pushBack(w)
	if wait <= 0 {
		return
	}
	w.deadline = w.since.Add(wait)
	e := &p.mu.expiry
	if e.armed && !w.deadline.Before(e.at) {
		return
	}
	if e.armed && e.timer.Stop() {
		e.armed = false
		p.wg.Done() // its callback will not run
	}
	if !e.armed {
		p.armExpiryLocked(w.deadline, w.since)
	}
}

// expiry is the pool's one wait-timeout timer.
type expiry struct {
	timer *time.Timer
	at    time.Time // when it fires, while armed
	armed bool      // a callback is pending or running (counted in wg)
}

func (p *Pool[S]) armExpiryLocked(at, now time.Time) {
	if p.mu.closed {
		return
	}
	e := &p.mu.expiry
	e.armed, e.at = true, at
	p.wg.Add(1)
	e.timer = time.AfterFunc(at.Sub(now), func() {
		defer p.wg.Done()
		p.expireDue()
	})
}

// expireDue ends every wait past its deadline with the wait timeout (or
// the outage it hid) and arms the timer for the next deadline.
func (p *Pool[S]) expireDue() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.expiry.armed = false
	if p.mu.closed {
		return
	}
	now := time.Now()
	var next time.Time
	for w := p.mu.waiters.Front(); w != nil; {
		after := w.next
		switch {
		case w.deadline.IsZero():
		case !w.deadline.After(now):
			p.mu.waiters.remove(w)
			p.mu.st.timeouts++
			w.ch <- grant[S]{err: p.waitTimeoutLocked(w.deadline.Sub(w.since)), expired: true}
		case next.IsZero() || w.deadline.Before(next):
			next = w.deadline
		}
		w = after
	}
	if !next.IsZero() {
		p.armExpiryLocked(next, now)
	}
}

// waitTimeoutLocked is the error a client gets after waiting timeout: the
// outage that kept servers away, when there is one.
func (p *Pool[S]) waitTimeoutLocked(timeout time.Duration) error {
	if p.unreachableLocked() {
		return &UnreachableError{Pool: p.cfg.Name, Waited: timeout, Err: p.mu.st.lastDialErr}
	}
	return &WaitTimeoutError{Pool: p.cfg.Name, Timeout: timeout}
}

// stopExpiryLocked stops the wait-timeout timer (the pool is closing).
func (p *Pool[S]) stopExpiryLocked() {
	if e := &p.mu.expiry; e.armed && e.timer.Stop() {
		e.armed = false
		p.wg.Done()
	}
}
