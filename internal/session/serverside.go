package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// serverSide is the goroutine that relays what one server sends to the
// client, with the state only it touches while it runs. One runs per link,
// from linkFor until its done closes; a new one starts only after the last
// has ended (reclaim), so the client view is only ever in one owner's hands.
type serverSide struct {
	s *Session
	l *link
	// v is the client view, lent by the session goroutine for this server
	// side's life and taken back by reclaim once done is closed.
	v *clientView
	// reset: the server took settings back to its defaults in the request
	// being answered; resync: the client's settings must go back on it.
	// resetInTx: that reset ran inside the transaction still open, so
	// putting the settings back inside it is undone with it.
	reset, resync, resetInTx bool
}

// clientView is what the relay knows of the client's settings: what the
// client has been told each reported parameter is, the keys that let
// attach skip its checks, and buffers reused from server to server. It has
// one owner at a time: the session goroutine while no server side runs,
// the server side while one does (handed over in linkFor, back in reclaim).
type clientView struct {
	// reported is what the client has been told each parameter is.
	reported reportedParams
	// wantKey is backend.ParamsKey(want), toldKey the ReportedKey of the
	// server whose reports the client was last brought up to date with;
	// both "" when reported changes.
	wantKey, toldKey string
	want             []wire.Param // reused by wanted
	// edits rewrites server messages for the client when no statement
	// tracker does (resetReport).
	edits wire.Edits
}

// deliver passes what the server answered, up to keep (all: -1), to the
// client, rewritten, and returns err or the client's write failure. Apart
// from run, so that run's frame stays small: the server side is a new
// goroutine per link, and a frame chain past its first stack made it grow
// (copy) its stack on every transaction.
func (ss *serverSide) deliver(rd *wire.Reader, keep int, err error, detach bool) error {
	s := ss.s
	span := rd.Take()
	if k := s.env.Knobs; k != nil && k.BeforeDeliver != nil {
		k.BeforeDeliver(span)
	}
	if keep >= 0 {
		span = span[:keep] // up to a server's FATAL, which the client side answers for
	}
	if s.tr != nil {
		span = s.tr.ApplyAnswers(span)
	} else {
		span = ss.v.edits.Apply(span)
	}
	if ss.resync && err == nil && !detach {
		// Before the client hears the answer, or its next request
		// could reach the server first and see the reset values.
		// SyncFor reads through the reader span lies in.
		span = bytes.Clone(span)
		ss.resyncSettings(context.Background())
	}
	if len(span) > 0 {
		if m := s.route.Meter; m != nil {
			m.Sent.AddAt(int64(len(span)), time.Now())
		}
		if werr := s.writeClient(span, rd.StreamLeft() > 0); werr != nil && !detach {
			err = fmt.Errorf("write to client: %w", werr)
		}
		// At a safe point the server goes back whatever became of
		// the client; the client side notices a lost client itself.
	}
	s.written()
	return err
}

// written says the answers counted so far are out (or, as the server side
// ends, never will be): it wakes whoever waited for that (awaitIdle, a
// drain of a pinned client).
func (s *Session) written() {
	// Stored before idleWanted is loaded, as awaitIdle stores idleWanted
	// before it loads owed: one of the two sees the other.
	s.owed.Store(false)
	if s.idleWanted.Load() {
		s.mu.Lock()
		s.answeredAllLocked()
		s.mu.Unlock()
	}
	if s.wakeAfter.Load() && s.wakeAfter.Swap(false) { // a load is cheaper on the hot path
		s.wakeClient()
	}
}

// run relays what l's server sends until a safe point (then it
// releases the server) or a failure or stop.
func (ss *serverSide) run() {
	s, l := ss.s, ss.l
	// A failure wakes the client side, after done is closed so that it
	// finds the failure when it looks.
	defer func() {
		if l.err != nil {
			s.wakeClient()
		}
	}()
	defer close(l.done)
	defer s.written() // nothing more will be
	rd := l.srv.Reader()
	for {
		detach, keep, err := ss.scan()
		if err == nil || keep >= 0 {
			err = ss.deliver(rd, keep, err, detach)
		}
		if detach {
			// Detached under the lock: the session no longer owns the
			// link, so this side must hand the server back on every path.
			if err != nil {
				l.srv.MarkBroken(reason.SafePointFailed, err.Error())
			}
			l.detached = true
			s.release(l)
			return
		}
		if err == nil {
			err = rd.Fill()
		}
		if err == nil {
			continue
		}
		if isDeadline(err) && l.nudge.Swap(false) && !l.stop.Load() {
			_ = l.srv.NetConn().SetReadDeadline(time.Time{})
			s.mu.Lock()
			detach := s.detachLocked(l)
			s.mu.Unlock()
			if detach {
				l.detached = true
				s.release(l)
				return
			}
			continue
		}
		if !l.stop.Load() {
			if l.timedOut.Load() {
				err = errQueryTimeout{s.queryGaveUpAfter()}
			}
			l.err = err
			if !errors.Is(err, errTxInStatementMode) {
				l.err = fmt.Errorf("%w: %w", errServerLost, err)
			}
		}
		return
	}
}

// scan scans the complete server messages buffered, tracking
// ReadyForQuery and ParameterStatus, and reports whether a safe point was
// reached. detach is reported even with an error: once detached, the link
// is the server side's to release. keep >= 0 says a pooled client's
// server sent a FATAL at that offset: the bytes before it go to the
// client, the FATAL itself does not (the client side answers for the lost
// server, and a client told FATAL would hang up).
func (ss *serverSide) scan() (detach bool, keep int, err error) {
	s, l := ss.s, ss.l
	rd := l.srv.Reader()
	if s.tr != nil {
		s.mu.Lock()
		s.tr.BeginAnswers()
		s.mu.Unlock()
	} else {
		ss.v.edits.Reset()
	}
	for {
		f, ok, err := rd.Next()
		if err != nil || !ok {
			return detach, -1, err
		}
		if f.Type == 'E' && s.route.Mode != config.PoolSession {
			if pgErr, fatal := serverFatal(f.Body); fatal {
				return detach, f.Off, pgErr
			}
			s.mu.Lock()
			s.mu.st.errored = true
			s.mu.sets.failed = true
			s.mu.Unlock()
		}
		if s.tr != nil {
			s.mu.Lock()
			err := s.tr.Server(f.Type, f.Body, f.Off)
			s.answeredLocked()
			s.mu.Unlock()
			if err != nil {
				return detach, -1, err
			}
		}
		switch f.Type {
		case 'G':
			s.mu.Lock()
			s.mu.st.copyStarted()
			s.mu.Unlock()
		case 'Z':
			if detach, err = ss.ready(rd, f, detach); err != nil {
				return false, -1, err
			}
		case 'C':
			if resetsSettings(f.Body) {
				l.srv.ForgetApplied() // its startup settings are gone too
				ss.reset = true
			}
			if changesSettings(f.Body) {
				l.srv.MarkDirty(s.id)
			}
			if string(f.Body) == "ROLLBACK\x00" {
				s.mu.Lock()
				s.mu.sets.rolledBack = true
				s.mu.Unlock()
			}
		case 'S':
			ss.paramStatus(f)
		}
	}
}

// ready handles the server's ReadyForQuery f: the transaction state, the
// timings, and whether the server goes back now (detach, or already
// detaching). The cases of scan are apart from it to keep its frame small
// (see deliver).
func (ss *serverSide) ready(rd *wire.Reader, f wire.Frame, detach bool) (bool, error) {
	s, l := ss.s, ss.l
	l.srv.Observe(f)
	status := l.srv.TxStatus()
	if ss.reset {
		ss.resetInTx = status == 'T'
	} else if status == 'I' {
		ss.resetInTx = false
	}
	ss.reset = false
	s.mu.Lock()
	if noted, key := s.mu.sets.ready(status); noted {
		l.srv.NoteSets(s.id, key)
	}
	s.mu.st.ready(status)
	if s.mu.st.pending == 0 {
		s.owed.Store(true) // until deliver has written this answer
	}
	slow := s.measureLocked(status)
	s.status.setHold(s.mu.st.hold())
	idle := s.mu.st.idle()
	detach = detach || s.detachLocked(l)
	s.readyLocked(idle)
	s.mu.Unlock()
	if slow > 0 {
		s.logSlow(slow)
	}
	if s.route.Mode == config.PoolStatement && idle && status != 'I' {
		rd.Take() // the client will not see this ReadyForQuery
		return false, errTxInStatementMode
	}
	return detach, nil
}

// paramStatus handles the server's ParameterStatus f.
func (ss *serverSide) paramStatus(f wire.Frame) {
	ss.l.srv.Observe(f)
	var ps pgproto3.ParameterStatus
	if ps.Decode(f.Body) != nil {
		return
	}
	if ss.reset {
		if out, ok := ss.resetReport(&ps); ok {
			ss.replaceAnswer(f.Off, f.Total(), out)
			return
		}
	}
	ss.v.reported.set(ps.Name, ps.Value)
	ss.v.wantKey, ss.v.toldKey = "", ""
}

// resetReport handles a ParameterStatus that follows a reset in the
// client's request: when the server went back to its default where the
// client's own server would have gone back to the client's startup value,
// the client is told that value (or nothing, when it was told it already)
// and the server gets it back. ok says the message is not relayed as sent;
// out is what the client sees instead.
func (ss *serverSide) resetReport(ps *pgproto3.ParameterStatus) (out []byte, ok bool) {
	s := ss.s
	sv, given := s.startupValue(ps.Name)
	if !given || sv == ps.Value || !isFollowed(ps.Name) {
		return nil, false
	}
	if def := s.route.Params.Load(); def == nil || def[ps.Name] != ps.Value {
		return nil, false // not the server's default: the client set it
	}
	ss.resync = true
	ss.v.wantKey, ss.v.toldKey = "", ""
	if cur, _ := ss.v.reported.get(ps.Name); cur == sv {
		return nil, true // no change, as far as the client can tell
	}
	ss.v.reported.set(ps.Name, sv)
	return wire.Append(nil, &pgproto3.ParameterStatus{Name: ps.Name, Value: sv}), true
}

// replaceAnswer replaces the server message at off (n bytes) in the
// batch being relayed with out.
func (ss *serverSide) replaceAnswer(off, n int, out []byte) {
	s := ss.s
	if s.tr != nil {
		s.mu.Lock()
		s.tr.ReplaceAnswer(off, n, out)
		s.mu.Unlock()
		return
	}
	ss.v.edits.ReplaceWith(off, n, out)
}

// quiet says the client awaits no answer and its settings may go back
// now. Inside a transaction only if the reset ran in it: a ROLLBACK takes
// both back. After a reset outside (DISCARD ALL, then BEGIN), put back
// inside, the settings would go with a ROLLBACK and the client would hear
// of it: they wait for the transaction's end.
func (ss *serverSide) quiet() bool {
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	status := s.mu.st.status
	return s.mu.cur == ss.l && s.mu.st.idle() && (status == 'I' || status == 'T' && ss.resetInTx)
}

// resyncSettings puts the client's settings back on its server after a reset, once
// the request is answered (before the client is told), the client has sent
// nothing since and no transaction is open. It runs
// on the server side, which owns the server's reader; the client side
// cannot write meanwhile (wmu). If the client already sent more, the next
// reset or server it gets does it.
func (ss *serverSide) resyncSettings(ctx context.Context) {
	s, l := ss.s, ss.l
	// The client side may still hold wmu from writing the request just
	// answered; it lets go at once. Once it books a new request the
	// client is no longer quiet, so waiting ends either way and never
	// blocks behind a write that waits for this side to read.
	for spins := 0; !s.wmu.TryLock(); spins++ {
		if spins == 10000 || !ss.quiet() {
			return
		}
		runtime.Gosched()
	}
	defer s.wmu.Unlock()
	if !ss.quiet() {
		return
	}
	ss.resync = false
	want := ss.v.wanted(s.params)
	ss.v.wantKey = ""
	if err := l.srv.SyncWith(ctx, s.id, "", want, s.setsToReplay()); err != nil {
		s.log().Debug("putting the client's settings back after its reset", "err", err)
	}
}
