package session

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// resetTimeout bounds pgvalve's own queries when a client leaves.
const resetTimeout = 10 * time.Second

// checkTimeout bounds server_check_delay's empty query: a healthy server
// answers in well under a millisecond, and a client is waiting.
const checkTimeout = 2 * time.Second

// link is one lease on one server, with the goroutine that relays what the
// server sends. Fields below done are written by that goroutine before it
// closes done, and read by the session only after.
type link struct {
	lease *pool.Lease[*backend.Conn]
	srv   *backend.Conn
	done  chan struct{}

	stop     atomic.Bool // the session asked the server side to stop
	timedOut atomic.Bool // query_timeout gave up on the server
	nudge    atomic.Bool // the session asks the server side to re-check the safe point

	// detached: released at a safe point; the lease is already back.
	detached bool
	// err: the server side failed (server gone, client gone, statement-mode
	// transaction); the session ends with it.
	err error
	// side is the server side's own state (no extra allocation per link).
	side serverSide
}

// current returns the linked server, or nil.
func (s *Session) current() *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.cur
}

// linkFor returns the linked server, leasing and preparing one when the
// client holds none. Only the session goroutine calls it.
func (s *Session) linkFor(ctx context.Context) (*link, error) {
	if l := s.current(); l != nil {
		return l, nil
	}
	s.reclaim() // the previous server side may be finishing its exit; never run two
	s.mu.Lock()
	draining := s.mu.draining
	s.mu.Unlock()
	if draining && !s.mayGo() {
		return nil, errShuttingDown
	}
	lease, err := s.leaseReady(ctx)
	if err != nil {
		s.status.set(Idle, 0, time.Now()) // no longer waiting
		return nil, err
	}
	srv := lease.Server()
	st := freshState()
	if s.txLost {
		s.txLost = false
		st.status = 'E' // enterLostTx put it there
	}
	l := &link{lease: lease, srv: srv, done: make(chan struct{})}
	s.mu.Lock()
	s.mu.cur = l
	// The last link's list of awaited answers is empty and nobody else's
	// now (its server side has ended): reuse it, an allocation less per
	// transaction.
	st.awaiting = s.mu.st.awaiting[:0]
	s.mu.st = st
	s.mu.sets.linked()
	if s.tr != nil {
		s.tr.Attach(srv.Statements(int(s.maxStmts)))
	}
	s.mu.Unlock()
	s.status.set(Active, srv.PID(), lease.Acquired())
	l.side = serverSide{s: s, l: l, v: s.view}
	s.view = nil // lent to the server side until reclaim
	s.last = l
	if s.runSide == nil {
		// Made once: a go statement with a function value and no
		// arguments allocates nothing, where go l.side.run() allocated
		// a closure per transaction. It reads s.last, which the session
		// goroutine changes only after this side's done is closed.
		s.runSide = func() { s.last.side.run() }
	}
	go s.runSide()
	return l, nil
}

// maxDeadServers bounds how many dead idle servers one request skips
// before it takes whatever comes.
const maxDeadServers = 8

// leaseReady leases a server and prepares it for this client. It skips
// servers found dead before anything of the client's went to them, so
// skipping replays nothing: idle ones that died while parked (closed by
// Release), and ones that die while the client's settings are applied.
func (s *Session) leaseReady(ctx context.Context) (*pool.Lease[*backend.Conn], error) {
	for i := 0; ; i++ {
		lease, err := s.acquire(ctx)
		if err != nil {
			return nil, err
		}
		srv := lease.Server()
		if i < maxDeadServers && !s.checked(ctx, srv, lease.Acquired()) {
			s.log().Debug("skipping dead idle server", "pid", srv.PID(), "reason", srv.Broken())
			s.releaseLease(lease)
			continue
		}
		_ = srv.NetConn().SetDeadline(time.Time{})
		err = s.attach(ctx, srv)
		if err == nil && s.txLost {
			err = s.enterLostTx(ctx, srv)
		}
		if err == nil {
			return lease, nil
		}
		s.releaseLease(lease)
		if srv.Broken() == "" || i >= maxDeadServers {
			return nil, err // the client's own settings failed, or too many dead servers
		}
		s.log().Debug("skipping a server that failed while being prepared", "pid", srv.PID(), "err", err)
	}
}

// checked reports whether an idle server is fit for reuse: a peek, one
// non-blocking syscall, finds one that closed while parked; one parked
// longer than server_check_delay also answers an empty query, which finds
// what a peek cannot (a cut network).
func (s *Session) checked(ctx context.Context, srv *backend.Conn, now time.Time) bool {
	if !srv.Alive() {
		return false
	}
	if srv.IdleFor(now) < s.env.Live().CheckDelay {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := srv.Exec(ctx, ""); err != nil {
		srv.MarkBroken(reason.ServerCheckFailed, err.Error())
		return false
	}
	return true
}

// acquire leases a server, waiting for one if none is free.
func (s *Session) acquire(ctx context.Context) (*pool.Lease[*backend.Conn], error) {
	m := s.route.Meter
	if lease := s.route.Pool.TryAcquire(); lease != nil {
		if m != nil {
			m.Latency[observe.Wait].ObserveAt(0, lease.Acquired())
		}
		return lease, nil // the common case: no wait, no timer
	}
	start := time.Now()
	s.status.set(Waiting, 0, start)
	w := s.watch.Load()
	if w == nil {
		w = &waitWatch{notify: s.queuedNotice}
		s.watch.Store(w)
	}
	ctx = w.begin(ctx, start, s.conn, s.rd.Buffered() == 0, s.queueCancellable, s.env.Live().WaitNotify)
	defer w.end()
	lease, err := s.route.Pool.Acquire(ctx)
	if err == nil && m != nil {
		now := lease.Acquired()
		m.Latency[observe.Wait].ObserveAt(now.Sub(start), now)
	}
	if cause := context.Cause(ctx); err != nil && (cause == errCanceledInQueue || cause == errClientGone || cause == ErrKilled) {
		err = cause
	}
	if _, timedOut := errors.AsType[*pool.WaitTimeoutError](err); timedOut {
		s.logWaitTimeout(time.Since(start))
	}
	return lease, err
}

// logWaitTimeout logs a client whose wait for a server timed out, with
// what the pool looked like then: the clients waiting include this one,
// which the pool has just taken out of its queue.
func (s *Session) logWaitTimeout(waited time.Duration) {
	st := s.route.Pool.Stats()
	s.log().Warn("wait for a server timed out", "pool", st.Name, "waited", waited,
		"clients_waiting", st.ClientsWaiting+1, "servers_busy", st.ServersActive, "pool_size", st.Size,
		"application_name", s.status.Login().ApplicationName)
}

// queuedNotice tells a client it is waiting for a server (query_wait_notify),
// so queuing shows before it fails.
func (s *Session) queuedNotice() {
	msg := reason.Queued.Message(s.route.Pool.Name(), s.env.Live().WaitTimeout)
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.conn.Write(wire.AppendNotice(nil, reason.Queued.Code(), msg))
	_ = s.conn.SetWriteDeadline(time.Time{})
}

// attach prepares a leased server for this client: it applies the client's
// settings and tells the client about every reported parameter whose value
// differs from what it was last told. Only then can cancels reach it.
func (s *Session) attach(ctx context.Context, srv *backend.Conn) error {
	v := s.view
	if v.wantKey == "" {
		v.wantKey = backend.ParamsKey(v.wanted(s.params))
	}
	if err := srv.SyncWith(ctx, s.id, v.wantKey, v.want, s.setsToReplay()); err != nil {
		return err
	}
	if told := srv.ReportedKey(); told != v.toldKey {
		var buf []byte
		for k, val := range srv.ReportedParams() {
			if old, ok := v.reported.get(k); !ok || old != val {
				buf = wire.Append(buf, &pgproto3.ParameterStatus{Name: k, Value: val})
				v.reported.set(k, val)
			}
		}
		if len(buf) > 0 {
			v.wantKey = "" // followed values are wanted as the client was told them
			if _, err := s.conn.Write(buf); err != nil {
				return err
			}
		}
		v.toldKey = told
	}
	s.setLink(srv)
	return nil
}

// setsToReplay are the client's own settings, for SyncWith.
func (s *Session) setsToReplay() backend.Sets {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.sets.replay
}

// followed are the reported parameters a client can set (SET, startup)
// whose values follow the client from server to server. The rest (server
// version, encoding, superuser) are the server's own.
var followed = [...]string{"application_name", "client_encoding", "DateStyle", "IntervalStyle",
	"TimeZone", "standard_conforming_strings", "search_path", "default_transaction_read_only"}

func isFollowed(name string) bool {
	for _, f := range followed {
		if f == name {
			return true
		}
	}
	return false
}

// wanted are the settings this client's servers must have: the followed
// reported parameters as the client last saw them (its startup values,
// then whatever it SET since), and its other startup parameters (params).
func (v *clientView) wanted(params []wire.Param) []wire.Param {
	out := v.want[:0]
	if n := len(followed) + len(params); cap(out) < n {
		out = make([]wire.Param, 0, n) // once, not a growth per append
	}
	for _, name := range followed {
		if val, ok := v.reported.get(name); ok {
			out = append(out, wire.Param{Name: name, Value: val})
		}
	}
	for _, p := range params {
		// Followed names the server does not report (search_path before
		// PostgreSQL 18) come from the startup parameters.
		if _, known := v.reported.get(p.Name); !known || !isFollowed(p.Name) {
			out = append(out, p)
		}
	}
	v.want = out
	return out
}

// reclaim waits for the last server side to end and takes the client view
// back from it. Only the session goroutine calls it; safe to call twice.
func (s *Session) reclaim() {
	if s.last != nil {
		<-s.last.done
		s.view = s.last.side.v
		s.last = nil
	}
}

// errShuttingDown ends a client when pgvalve shuts down.
var errShuttingDown = errors.New("pgvalve is shutting down")

// ErrKilled is the cause its owner cancels a session's context with to
// end it at once from the admin console (KILL, KILL_CLIENT): the client
// is told 57P01, and a server it held is cancelled and closed if it was
// mid-request, else rolled back and given back.
var ErrKilled = errors.New("ended by an admin command")

// drain asks the session to end at its next safe point: at once if it holds
// no server, else when its server goes back. Session-mode clients hold
// theirs until they leave.
func (s *Session) drain() {
	s.mu.Lock()
	s.mu.draining = true
	idle := s.mu.cur == nil
	s.mu.Unlock()
	if idle {
		s.wakeClient()
	}
}

// detachLocked unlinks l at a safe point; the caller then releases it
// outside the lock. Session pooling never detaches.
func (s *Session) detachLocked(l *link) bool {
	if s.route.Mode == config.PoolSession || s.mu.cur != l || !s.mu.st.safe() {
		return false
	}
	if s.mu.pins.pinned() {
		if s.mu.draining {
			// A pinned client keeps its server, so a drain ends it here,
			// at its safe point: endLink cleans the server. Once the
			// answer that made it safe is written, not before (see owed).
			if s.owed.Load() {
				s.wakeAfter.Store(true)
			} else {
				s.wakeClient()
			}
		}
		return false
	}
	s.mu.cur = nil
	return true
}

// release hands l's server back after a detach. setLink(nil) waits for any
// cancel in flight, so a cancel can never reach the next client. A
// draining session is woken to end.
func (s *Session) release(l *link) {
	s.setLink(nil)
	now := time.Now()
	l.srv.SetIdle(now)
	s.releaseLease(l.lease)
	s.status.set(Idle, 0, now)
	s.mu.Lock()
	draining := s.mu.draining
	s.mu.Unlock()
	if draining {
		s.wakeClient()
	}
}

// endLink runs when the client leaves or fails while holding l: it stops
// the server side, decides whether the server can be reused, and releases.
// lost, if not nil, is why the server was lost and must be closed.
func (s *Session) endLink(ctx context.Context, l *link, lost error) {
	s.mu.Lock()
	if s.mu.cur != l {
		// Detached at a safe point meanwhile: the server already belongs to
		// the pool, maybe to another client. Touch nothing.
		s.mu.Unlock()
		<-l.done
		return
	}
	// Claiming the link stops the server side from detaching it.
	s.mu.cur = nil
	st, left := s.mu.st, s.mu.pins.clone()
	s.mu.Unlock()
	l.stop.Store(true)
	_ = l.srv.NetConn().SetReadDeadline(time.Unix(1, 0))
	// The server side may be blocked writing to a client that stopped reading.
	_ = s.conn.SetWriteDeadline(time.Unix(1, 0))
	<-l.done
	if lost != nil {
		l.srv.MarkBroken(reason.ServerLost, lost.Error()) // only now: the server side may mark it too
	}
	_ = l.srv.NetConn().SetDeadline(time.Time{})
	_ = s.conn.SetDeadline(time.Time{})
	s.setLink(nil)
	defer s.status.set(Idle, 0, time.Now())
	defer s.releaseLease(l.lease)
	defer l.srv.SetIdle(time.Now())
	s.finish(ctx, l, st, left) // the pool logs a server closed for its Broken reason
}

// finish decides whether a server a client left can serve another: only if
// the client left between requests, and after a rollback and (in session
// mode) the reset query. Otherwise it is marked broken so Release closes
// it; a server still running the client's query is cancelled first so it
// does not run on unobserved.
func (s *Session) finish(ctx context.Context, l *link, st txState, left pins) {
	srv := l.srv
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), resetTimeout)
	defer cancel()
	switch {
	case srv.Broken() != "":
		return
	case l.err != nil && !errors.Is(l.err, errTxInStatementMode):
		srv.MarkBroken(reason.RelayFailed, l.err.Error())
		return
	case !st.idle():
		_ = srv.Cancel(bg)
		srv.MarkBroken(reason.ClientLeftMidRequest, "")
		return
	case srv.TxStatus() != 'I':
		if err := srv.Exec(bg, "ROLLBACK"); err != nil {
			srv.MarkBroken(reason.RollbackFailed, err.Error())
			return
		}
	}
	if s.route.Mode != config.PoolSession && !s.cleaned(bg, srv, left) {
		return
	}
	if reset := s.env.Live().ResetQuery; s.route.Mode == config.PoolSession && reset != "" {
		if err := srv.Exec(bg, reset); err != nil {
			srv.MarkBroken(reason.ResetQueryFailed, err.Error())
		} else {
			srv.ForgetApplied()
		}
	}
}

// releaseLease gives a server back to its pool; every path goes through it.
func (s *Session) releaseLease(lease *pool.Lease[*backend.Conn]) {
	if k := s.env.Knobs; k != nil && k.SkipRelease != nil && k.SkipRelease() {
		// The counters stay wrong, as the knob intends; the socket is
		// closed so the backend does not outlive the test.
		lease.Server().Close()
		return
	}
	lease.Release()
}
