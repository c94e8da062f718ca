package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// idleTimeout ends a client that stayed idle too long: r is
// reason.IdleTxTimeout or reason.ClientIdleTimeout, limit the timeout.
type idleTimeout struct {
	r     reason.Reason
	limit time.Duration
}

func (e *idleTimeout) Error() string { return e.r.Message(e.limit) }

// readClient reads more client input. Whatever woke it instead (a server
// side that failed, a drain, a deadline) is handled between reads: a lost
// server is answered for and the client goes on; an idle timeout ends it.
//
// woke says the wait was ended already (a parked client resumed). A client
// asked to park (park.go) returns errParked from here, its wait unfinished.
func (s *Session) readClient(ctx context.Context, woke bool) error {
	live := s.liveTimeouts()
	for {
		if woke || s.timed {
			if woke {
				live = s.liveTimeouts() // a reload may have changed them
			}
			// Reset before looking, so a wake-up after the look is not lost.
			deadline, expired := s.idleDeadline(time.Now(), live)
			s.setReadDeadline(deadline)
			if woke {
				if ctx.Err() != nil {
					return context.Cause(ctx) // pgvalve closes at once, or an admin KILLed the client
				}
				if s.isDraining() {
					if s.handOff() {
						return errHandedOver
					}
					return errShuttingDown
				}
				if l := s.endedLink(); l != nil {
					if !errors.Is(l.err, errServerLost) {
						return l.err
					}
					if err := s.recoverLost(ctx, l, nil); err != nil {
						return err
					}
					s.skipRest()
					continue
				}
			}
			if expired != nil {
				return expired
			}
			if woke && s.wantsPark() {
				return errParked
			}
		}
		// Nothing of the batch is held past here (frames are reset, the
		// span written), so an idle client waits holding no buffer.
		s.rd.Release()
		err := s.fill()
		if err == nil {
			if s.timed {
				s.readNow()
			}
			return nil
		}
		if !isDeadline(err) {
			return err
		}
		woke = true
	}
}

// clockBase is what Session.lastRead counts from; its monotonic reading
// keeps the idle timeouts off the wall clock, as a time.Time's would.
var clockBase = time.Now()

// readNow notes that the client sent something now.
func (s *Session) readNow() { s.lastRead = time.Since(clockBase) }

// liveTimeouts returns the settings in force and notes whether the idle
// timeouts are on. lastRead is kept only while they are, so when a reload
// turns them on the client counts as idle from now, never from before.
func (s *Session) liveTimeouts() *Live {
	live := s.env.Live()
	timed := live.IdleTxTimeout > 0 || live.ClientIdleTimeout > 0
	if timed && !s.timed {
		s.readNow()
	}
	s.timed = timed
	return live
}

// endedLink returns the client's current link if its server side has
// ended on its own (a failure); nil otherwise.
func (s *Session) endedLink() *link {
	l := s.current()
	if l == nil {
		return nil
	}
	select {
	case <-l.done:
		if l.err != nil {
			return l
		}
	default:
	}
	return nil
}

// idleDeadline is when the client, waited on since it last sent something
// or got its last answer, has been idle too long; expired is non-nil once
// that time has come. While requests are running nothing expires, but the
// deadline still wakes the client side to look again.
func (s *Session) idleDeadline(now time.Time, live *Live) (deadline time.Time, expired error) {
	s.mu.Lock()
	linked, st, since := s.mu.cur != nil, s.mu.st, s.mu.idleSince
	s.mu.Unlock()
	if last := clockBase.Add(s.lastRead); last.After(since) {
		since = last
	}
	limit, inTx := live.ClientIdleTimeout, linked && st.status != 'I'
	if inTx {
		limit = live.IdleTxTimeout
	}
	switch {
	case linked && !st.idle():
		if recheck := min(nonZero(live.IdleTxTimeout), nonZero(live.ClientIdleTimeout)); recheck > 0 {
			return now.Add(recheck), nil
		}
		return time.Time{}, nil
	case limit <= 0:
		return time.Time{}, nil
	}
	deadline = since.Add(limit)
	if now.Before(deadline) {
		return deadline, nil
	}
	if inTx {
		return deadline, &idleTimeout{reason.IdleTxTimeout, limit}
	}
	return deadline, &idleTimeout{reason.ClientIdleTimeout, limit}
}

// nonZero maps 0 (off) to the largest duration, for min.
func nonZero(d time.Duration) time.Duration {
	if d <= 0 {
		return 1<<63 - 1
	}
	return d
}

// readyLocked notes a ReadyForQuery for the timeouts. The caller holds s.mu.
func (s *Session) readyLocked(idle bool) {
	live := s.env.Live()
	if idle && (live.IdleTxTimeout > 0 || live.ClientIdleTimeout > 0) {
		s.mu.idleSince = time.Now()
	}
	switch {
	case s.mu.st.pending == 0:
	case live.QueryTimeout > 0:
		s.armQueryLocked(live.QueryTimeout) // the next request's turn
	case s.mu.qTimer != nil:
		s.mu.qTimer.Stop() // turned off by a reload
	}
}

// errQueryTimeout is why a server that ignored its cancel was given up on.
type errQueryTimeout struct{ after time.Duration }

func (e errQueryTimeout) Error() string {
	return fmt.Sprintf("query_timeout: no answer from the server within %s, even after a cancel", e.after)
}

// queryGrace is how long a cancelled request may take to end before its
// server is given up on: an unreachable server never answers a cancel.
func queryGrace(limit time.Duration) time.Duration { return min(limit, 5*time.Second) }

// queryGaveUpAfter is how long a request ran before query_timeout gave up
// on its server.
func (s *Session) queryGaveUpAfter() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.qLimit + queryGrace(s.mu.qLimit)
}

// armQueryLocked starts query_timeout (limit) for the oldest request. The
// caller holds s.mu.
func (s *Session) armQueryLocked(limit time.Duration) {
	s.mu.qArmed = time.Now()
	s.mu.qLimit = limit
	s.mu.qCancelled = false
	if s.mu.qTimer == nil {
		s.mu.qTimer = time.AfterFunc(limit, s.queryTimedOut)
	} else {
		s.mu.qTimer.Reset(limit)
	}
}

// queryTimedOut runs when query_timeout may have passed: the first time it
// cancels the request, the second it gives up on the server, so the client
// gets 08006 and goes on (recoverLost).
func (s *Session) queryTimedOut() {
	s.mu.Lock()
	l := s.mu.cur
	if l == nil || s.mu.st.pending == 0 {
		s.mu.Unlock()
		return
	}
	limit := s.mu.qLimit
	due := s.mu.qArmed.Add(limit)
	if s.mu.qCancelled {
		due = due.Add(queryGrace(limit))
	}
	if wait := time.Until(due); wait > 0 { // armed again since
		s.mu.qTimer.Reset(wait)
		s.mu.Unlock()
		return
	}
	if s.mu.qCancelled {
		// Still ours under the lock: cut it, the server side reports.
		l.timedOut.Store(true)
		l.srv.MarkBroken(reason.QueryTimeout, "")
		_ = l.srv.NetConn().SetDeadline(time.Unix(1, 0))
		s.mu.Unlock()
		return
	}
	s.mu.qCancelled = true
	s.mu.qTimer.Reset(queryGrace(limit))
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), queryGrace(limit))
	defer cancel()
	s.log().Info("query_timeout: cancelling the running request", "after", limit)
	_ = s.CancelCurrent(ctx)
}

// stopQueryTimer ends query_timeout's timer with the session.
func (s *Session) stopQueryTimer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.qTimer != nil {
		s.mu.qTimer.Stop()
	}
}

// waitWatch watches a client while it waits for a server: it ends the
// wait if the client hangs up or says Terminate (pgx sends Terminate and
// then waits for the close), so a client that left does not take a server
// and run its request; and, for a batch that can be answered alone
// (cancellable), if the client cancels it (CancelCurrent). One is made at
// the client's first wait and lives as long as its session, serving every
// wait: no new timer or context per wait, and its timer runs on between
// waits (see begin).
type waitWatch struct {
	mu          sync.Mutex
	t           *time.Timer
	ctx         context.Context // ended with the cause; made again after
	cancel      context.CancelCauseFunc
	conn        net.Conn
	since       time.Time     // the wait began
	notifyAfter time.Duration // query_wait_notify; 0: never
	notify      func()        // tells the client it is queued; called under mu, once per wait
	notified    bool
	waiting     bool
	atBoundary  bool // the socket's next byte starts a message
	cancellable bool
	closed      bool
	armed       bool      // the timer will fire (at at): check has not yet found no wait
	at          time.Time // when the armed timer fires
}

// begin starts watching a wait that began at now; the wait must use the
// returned context. The timer is left running between waits (check stops
// it once it finds no wait), so a client that waits for a server on every
// transaction does not arm and stop a timer on every one.
func (w *waitWatch) begin(parent context.Context, now time.Time, conn net.Conn, atBoundary, cancellable bool, notifyAfter time.Duration) context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notifyAfter = notifyAfter
	if w.ctx == nil || w.ctx.Err() != nil {
		w.ctx, w.cancel = context.WithCancelCause(parent)
	}
	w.conn, w.waiting, w.atBoundary, w.cancellable = conn, true, atBoundary, cancellable
	w.since, w.notified = now, false
	next := w.nextLocked(now)
	switch {
	case w.t == nil:
		w.t = time.AfterFunc(next, w.check)
	case !w.armed || now.Add(next).Before(w.at):
		w.t.Reset(next)
	default:
		return w.ctx // the running timer looks soon enough
	}
	w.armed, w.at = true, now.Add(next)
	return w.ctx
}

// nextLocked is how long until the next look: the watch period, or less
// when the queued NOTICE is due sooner.
func (w *waitWatch) nextLocked(now time.Time) time.Duration {
	next := clientWatchPeriod
	if w.notifyAfter > 0 && !w.notified {
		next = min(next, max(w.since.Add(w.notifyAfter).Sub(now), time.Millisecond))
	}
	return next
}

// end stops watching the wait; the timer stops at its next look.
func (w *waitWatch) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting = false
}

// check looks at the waiting client's socket without reading it.
func (w *waitWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waiting || w.closed {
		w.armed = false
		return
	}
	var buf [5]byte
	st, n, _ := wire.PeekInto(w.conn, buf[:])
	if st == wire.PeekClosed || st == wire.PeekFailed || (w.atBoundary && n == 5 && buf == terminate) {
		w.cancel(errClientGone)
		return
	}
	now := time.Now()
	if w.notifyAfter > 0 && !w.notified && now.Sub(w.since) >= w.notifyAfter {
		w.notified = true
		w.notify() // under mu: end waits for it, so it never races the relay's writes
	}
	next := w.nextLocked(now)
	w.t.Reset(next)
	w.at = now.Add(next)
}

// cancelQueued ends a cancellable wait in progress; it reports whether
// there was one.
func (w *waitWatch) cancelQueued() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waiting || !w.cancellable {
		return false
	}
	w.cancel(errCanceledInQueue)
	return true
}

// stopTimers stops the client's wait watch (if it ever waited) and
// query_timeout as it ends.
func (s *Session) stopTimers() {
	defer s.stopQueryTimer()
	if w := s.watch.Load(); w != nil {
		w.close()
	}
}

// close ends the watch with its session.
func (w *waitWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.t != nil {
		w.t.Stop()
	}
	if w.cancel != nil {
		w.cancel(nil)
	}
}

// terminate is a whole Terminate message.
var terminate = [5]byte{'X', 0, 0, 0, 4}

// errCanceledInQueue: the client cancelled a request still waiting for a
// server; it never ran.
var errCanceledInQueue = errors.New("canceling statement due to user request")

// answerCanceled answers each request of a batch cancelled while queued,
// as PostgreSQL answers a cancelled statement.
func (s *Session) answerCanceled(requests int) error {
	status := byte('I')
	if s.txLost {
		status = 'E'
	}
	var out []byte
	for range requests {
		out = s.appendFailed(out, reason.CanceledInQueue, status)
	}
	_, err := s.conn.Write(out)
	return err
}

// clientWatchPeriod is how often a waiting client's socket is looked at.
const clientWatchPeriod = 200 * time.Millisecond

// errClientGone: the client hung up while waiting for a server.
var errClientGone = errors.New("client disconnected while waiting for a server")
