package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// errClientTerminated ends a session whose client sent Terminate.
var errClientTerminated = errors.New("client sent Terminate")

// errTxInStatementMode ends a statement-mode client that opened a
// transaction.
var errTxInStatementMode = errors.New(reason.TxInStatementMode.Message())

// serve greets the client and relays its requests. A client holds a server
// only while it has work in flight (transaction and statement pooling) or
// from its first request to disconnect (session pooling).
func (s *Session) serve(ctx context.Context) error {
	greeting, err := s.greetingParams(ctx)
	if err != nil {
		s.sendError(wire.SeverityFatal, err)
		return &toldAlready{err}
	}
	s.view = &clientView{reported: reportedParams{base: greeting}} // shared: read only
	for i, p := range s.params {
		// Setting names are case-insensitive: a startup "timezone" is the
		// TimeZone the server reports.
		for name := range greeting {
			if name != p.Name && strings.EqualFold(name, p.Name) {
				s.params[i].Name = name
			}
		}
		if _, reported := greeting[s.params[i].Name]; reported {
			s.view.reported.set(s.params[i].Name, p.Value)
		}
	}
	if _, err := s.sock.Write(loginReply(&s.view.reported, s.key)); err != nil {
		return &toldAlready{err}
	}
	s.own.Push(func() { s.unlink(ctx) }) // also when clientSide panics: the server goes back
	s.own.Push(s.stopTimers)
	s.readNow() // idle from the greeting on
	return s.clientSide(ctx)
}

// toldAlready is an error that ended the session before its greeting: the
// client has heard what it will hear.
type toldAlready struct{ err error }

func (e *toldAlready) Error() string { return e.err.Error() }
func (e *toldAlready) Unwrap() error { return e.err }

// proceed runs the client side from step until the client ends, which it
// returns, or parks (ErrParked: the goroutine that wakes it goes on). A
// panic still ends the session, giving its server back, on its way to the
// goroutine's recovery.
func (s *Session) proceed(ctx context.Context, step func(context.Context) error) (err error) {
	done := false
	defer func() {
		if !done {
			s.own.Run()
		}
	}()
	err = step(ctx)
	for errors.Is(err, errParked) {
		if s.park() {
			done = true
			return ErrParked
		}
		err = s.carryOn(ctx)
	}
	err = s.endWith(ctx, err)
	done = true
	return err
}

// endWith ends the session: its server goes back, the client hears why it
// ends when it did not choose to, and what the session set up is undone.
func (s *Session) endWith(ctx context.Context, err error) error {
	var told *toldAlready
	if errors.As(err, &told) {
		err = told.err
	} else {
		if l := s.unlink(ctx); l != nil && l.err != nil {
			err = l.err
		}
		s.reportEnd(err)
	}
	s.own.Run()
	return err
}

// unlink ends the session's hold on a server, if any, and waits for the
// last server side to exit; it returns the link it ended. Safe to call
// twice.
func (s *Session) unlink(ctx context.Context) *link {
	if l := s.current(); l != nil {
		s.endLink(ctx, l, nil)
		return l
	}
	s.reclaim()
	return nil
}

// reportEnd tells the client why its session ends, when it did not choose to.
func (s *Session) reportEnd(err error) {
	var pv *protocolViolation
	var idle *idleTimeout
	switch {
	case err == nil, errors.Is(err, errClientTerminated):
	case errors.As(err, &pv):
		s.log().Info(reason.ProtocolViolation.Log(), "err", pv.err)
		s.end(reason.ProtocolViolation, pv)
		s.lingerClose()
	case errors.Is(err, errTxInStatementMode):
		s.end(reason.TxInStatementMode)
	case errors.Is(err, errServerLost):
		s.sendError(wire.SeverityFatal, err)
	case errors.As(err, &idle):
		s.log().Info(idle.r.Log(), "err", err)
		s.end(idle.r, idle.limit)
	case errors.Is(err, errShuttingDown):
		s.end(reason.ShuttingDown)
	case errors.Is(err, ErrKilled):
		s.log().Info(reason.Killed.Log())
		s.end(reason.Killed)
	}
}

// errServerLost wraps a server-side failure the client must hear about.
var errServerLost = errors.New("server connection lost")

// clientSide reads the client, leases a server when a batch needs one, and
// forwards batches whole. It returns when the client leaves or fails, or
// the server side fails in a way the client cannot survive.
func (s *Session) clientSide(ctx context.Context) error {
	for {
		s.startBatches()
		requests, last, terminated, bad := s.scanClient()
		taken := s.rd.Take()
		if m := s.route.Meter; m != nil {
			m.Received.AddAt(int64(len(taken)), time.Now())
		}
		span := s.skipAnswered(taken, bad)
		if terminated {
			span = span[:len(span)-5] // Terminate is pgvalve's to handle
		}
		if bad != nil {
			// As PostgreSQL, answer what came before it, then end the client.
			span = span[:bad.at]
		}
		if l := s.endedLink(); l != nil && errors.Is(l.err, errServerLost) {
			// The server died while this batch was on its way: answer for
			// what it owed first, then send the batch elsewhere, all but
			// the rest of a message whose start went to the lost server.
			cont := s.partialSent
			if err := s.recoverLost(ctx, l, nil); err != nil {
				return err
			}
			if cont {
				span = s.dropContinuation(span, bad)
			}
		}
		if len(span) > 0 {
			err := s.forward(ctx, span, requests, last)
			if l := s.current(); l != nil && errors.Is(err, errServerLost) {
				err = s.recoverLost(ctx, l, err)
				s.skipRest() // the span went, or was meant to
			}
			if err != nil {
				return err
			}
		}
		s.frames, s.types = s.frames[:0], s.types[:0]
		if bad != nil {
			s.awaitIdle(ctx)
			return bad
		}
		if terminated {
			return errClientTerminated
		}
		if err := s.readClient(ctx, false); err != nil {
			return err
		}
	}
}

func (s *Session) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A pinned client never gives its server back: it ends at its safe
	// point, and its server is cleaned as it goes.
	// Nor while the answer that made it safe is still to be written.
	return s.mu.draining && (s.mu.cur == nil || s.mu.pins.pinned() && s.mu.st.safe() && !s.owed.Load())
}

// scanClient scans the client messages buffered, checking each type, and
// counts what the safe point needs. A message bigger than the buffer is
// scanned from its header and its bytes stream through in later batches:
// last is then its type until its final byte has passed. It stops at
// Terminate, or at a message that breaks the protocol (bad says where it
// starts in the batch: what comes before it is still forwarded).
func (s *Session) scanClient() (requests int, last byte, terminated bool, bad *protocolViolation) {
	last = s.rd.Streaming() // a batch that only carries on a message ends with it
	s.firstFrame = -1
	heads := s.status != nil && s.env.Live().QueryText
	for {
		at := s.rd.Scanned()
		f, ok, err := s.rd.Next()
		if err != nil {
			return requests, last, false, &protocolViolation{err: err, at: at}
		}
		if !ok {
			return requests, last, false, nil
		}
		if !wire.IsFrontendType(f.Type) {
			return requests, last, false, &protocolViolation{err: fmt.Errorf("invalid frontend message type %d", f.Type), at: f.Off}
		}
		if s.firstFrame < 0 {
			s.firstFrame = f.Off
		}
		if f.Type == 'X' {
			return requests, last, true, nil
		}
		if _, wants := requestEnds(f.Type); wants {
			requests++
		}
		if heads && (f.Type == 'Q' || f.Type == 'P') {
			s.noteQuery(f)
		}
		if counted(f.Type) {
			s.types = append(s.types, f.Type)
		}
		last = f.Type
		if s.tr != nil || s.txLost || s.detect {
			s.frames = append(s.frames, f)
		}
	}
}

// noteQuery keeps the head of the query a Query or Parse carries in the
// client's status.
func (s *Session) noteQuery(f wire.Frame) {
	body := f.Body
	if body == nil {
		s.status.forgetQuery() // streamed through: its text is not at hand
		return
	}
	if f.Type == 'P' {
		_, body, _ = bytes.Cut(body, []byte{0}) // after the statement's name
	}
	text, _, _ := bytes.Cut(body, []byte{0})
	s.status.noteQuery(text)
}

// forward sends a batch of client messages to the linked server. The batch
// is counted before it is written, so the server side can never see its
// ReadyForQuery first.
func (s *Session) forward(ctx context.Context, span []byte, requests int, last byte) error {
	defer func() { s.raised = nil }()
	if s.detect {
		s.lookAhead()
	}
	for {
		err := s.forwardOnce(ctx, span, requests, last)
		if !errors.Is(err, errDetached) {
			return err
		}
	}
}

// errDetached: the server went back to its pool at a safe point (the last
// answer to the client's previous batch) after the client side took it for
// this batch and before it booked the batch on it; nothing was sent, and
// the batch goes to the next server the client gets.
var errDetached = errors.New("the server went back to its pool")

func (s *Session) forwardOnce(ctx context.Context, span []byte, requests int, last byte) error {
	if s.txLost && s.current() == nil {
		if done, err := s.answerLostTx(requests, last); done || err != nil {
			return err
		}
	}
	if done, err := s.answerListen(ctx, span, requests, last); done || err != nil {
		return err
	}
	if s.raised != nil {
		span, last = s.raised, 'Q' // a retry after errDetached
	} else if refused, cause := s.pinRefused(requests, last); refused {
		if s.current() == nil {
			s.reclaim() // the last server side's answers reach the client first
			return s.refusePin(requests, cause)
		}
		span, last = s.raisePinRefused(requests, cause), 'Q'
		s.raised = span
	}
	if s.tr != nil && s.current() == nil && !s.txLost {
		if done, err := s.answerDeferred(); done || err != nil {
			return err
		}
	}
	// Only whole requests can be answered without a server.
	s.queueCancellable = endsWithRequests(requests, last) && s.rd.Streaming() == 0
	l, err := s.linkFor(ctx)
	if errors.Is(err, errCanceledInQueue) {
		return s.answerCanceled(requests)
	}
	if k := s.env.Knobs; k != nil && k.BeforeForward != nil && err == nil {
		k.BeforeForward(span)
	}
	if errors.Is(err, errShuttingDown) || errors.Is(err, ErrKilled) {
		return err
	}
	if err != nil {
		s.sendError(wire.SeverityFatal, err)
		return fmt.Errorf("no server: %w", err)
	}
	if s.tr != nil {
		return s.forwardTracked(ctx, l, span, last)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	nudge, err := s.book(l, span, requests, last)
	if err != nil {
		return err
	}
	return s.write(l, span, nudge)
}

// book records an untracked batch under s.mu (deferred unlock: see
// bookSegment).
func (s *Session) book(l *link, span []byte, requests int, last byte) (nudge bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cur != l {
		return false, errDetached
	}
	if k := s.env.Knobs; k != nil && k.UnderLock != nil {
		k.UnderLock(span)
	}
	s.partialSent = s.rd.Streaming() != 0
	if s.detect {
		s.notePinsLocked(s.frames)
	}
	return s.bookLocked(s.types, requests, last, s.partialSent), nil
}

// bookLocked records a span of client messages about to be written in the
// protocol state, before the write, so the server side can never see its
// ReadyForQuery first. partial says the client's message goes on past the
// span, so it is no safe point. It reports whether the server side must
// look again for a safe point once it is written. The caller holds s.mu
// and s.wmu, and has checked that l is still the client's.
func (s *Session) bookLocked(types []byte, requests int, last byte, partial bool) (nudge bool) {
	wasIdle := s.mu.st.pending == 0
	s.mu.st.forwarded(types, last, partial)
	s.status.setHold(s.mu.st.hold())
	if wasIdle && requests > 0 && s.route.Meter != nil {
		s.mu.busySince = time.Now()
	}
	if limit := s.env.Live().QueryTimeout; limit > 0 && wasIdle && requests > 0 {
		s.armQueryLocked(limit)
	}
	return requests == 0 && s.route.Mode != config.PoolSession && s.mu.st.safe()
}

// write sends a booked span to l's server. The caller holds s.wmu, so no
// other write (resync) comes between booking and writing.
func (s *Session) write(l *link, span []byte, nudge bool) error {
	if _, err := l.srv.Write(span); err != nil {
		return fmt.Errorf("%w: write: %v", errServerLost, err)
	}
	if nudge {
		// A CopyDone or CopyFail after the server already failed the COPY
		// gets no answer: wake the server side to detach now.
		l.nudge.Store(true)
		_ = l.srv.NetConn().SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// answerDeferred answers a batch that only prepares statements, for a
// client that holds no server (see stmt.Tracker.Deferrable).
func (s *Session) answerDeferred() (done bool, err error) {
	s.batch = s.batch[:0]
	for _, f := range s.frames {
		s.batch = append(s.batch, stmt.Message{Type: f.Type, Body: f.Body})
	}
	if !s.tr.Deferrable(s.batch) {
		return false, nil
	}
	s.reclaim() // the last server side's answers reach the client first
	s.mu.Lock()
	out, err := s.tr.Defer(s.batch, s.deferBuf[:0])
	s.mu.Unlock()
	if err != nil {
		return true, &protocolViolation{err: err}
	}
	s.deferBuf = out
	if s.detect && !s.quiet {
		s.noteStatements(s.frames)
	}
	if _, err := s.sock.Write(out); err != nil {
		return true, err
	}
	return true, nil
}

// protocolViolation is a malformed, oversized or unknown client message,
// at offset at of its batch. The client is ended with 08P01 once the
// server side has stopped, so the error never interleaves with relayed
// bytes.
type protocolViolation struct {
	err error
	at  int
}

func (e *protocolViolation) Error() string { return "protocol violation: " + e.err.Error() }
func (e *protocolViolation) Unwrap() error { return e.err }

// greetingParams are the parameters a new client is told about: those of a
// fresh server of its pool. Only a pool's first clients wait to learn them:
// for a server of their own, or for any server of the pool to log in,
// whichever comes first. A server that logs in goes to the first client in
// line, which may hold it for a long transaction; a login must not wait
// for that transaction (nor its client for the login: pgbench -C connects
// its clients one after the other on one thread).
func (s *Session) greetingParams(ctx context.Context) (map[string]string, error) {
	cache := s.route.Params
	if p := cache.Load(); p != nil {
		return p, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stored := cache.Stored()
	go func() { // ends with greetingParams at the latest
		select {
		case <-stored:
			cancel(pool.ErrNotNeeded)
		case <-ctx.Done():
		}
	}()
	lease, err := s.route.Pool.Acquire(ctx)
	if err != nil {
		if p := cache.Load(); p != nil {
			return p, nil
		}
		return nil, err
	}
	defer s.releaseLease(lease)
	return lease.Server().Params(), nil
}

// loginReply is what PostgreSQL sends after authentication: AuthenticationOk,
// the reported parameters, the client's cancel key (pgvalve's own, never a
// server's) and ReadyForQuery.
func loginReply(params *reportedParams, key cancel.Key) []byte {
	// PostgreSQL's greeting is under 600 bytes: one allocation, without a
	// pass over the parameters to size it.
	buf := wire.Append(make([]byte, 0, 1024), &pgproto3.AuthenticationOk{})
	params.each(func(k, v string) {
		buf = wire.Append(buf, &pgproto3.ParameterStatus{Name: k, Value: v})
	})
	buf = wire.Append(buf, &pgproto3.BackendKeyData{ProcessID: key.PID, SecretKey: key.Secret})
	return wire.Append(buf, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// Bounds on reading what a client sent after pgvalve gave up on it.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 20
)

// lingerClose reads and drops what the client still sends, for a bounded
// time and size, after half-closing our side: closing a socket with unread
// input makes the kernel reset the connection, and the client would never
// read the error just sent.
func (s *Session) lingerClose() {
	if tc, ok := s.conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, s.conn, lingerBytes)
}

// changesSettings reports whether a CommandComplete tag says the client
// changed session settings itself.
func changesSettings(tag []byte) bool {
	switch string(tag) {
	case "SET\x00", "RESET\x00", "DISCARD ALL\x00":
		return true
	}
	return false
}
