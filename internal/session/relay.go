package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// resetTimeout bounds the reset query run when a client leaves.
const resetTimeout = 10 * time.Second

// serveSession is session pooling: the client is greeted at once, takes a
// server with its first request and keeps it until it disconnects.
func (s *Session) serveSession(ctx context.Context, route Route, params []wire.Param, key cancel.Key) error {
	greeting, err := s.greetingParams(ctx, route)
	if err != nil {
		s.sendError(wire.SeverityFatal, err)
		return err
	}
	for _, p := range params {
		if _, reported := greeting[p.Name]; reported {
			greeting[p.Name] = p.Value
		}
	}
	s.reported = greeting
	if _, err := s.conn.Write(loginReply(greeting, key)); err != nil {
		return err
	}
	// Wait for work before taking a server, so a client that only connects
	// holds nothing and a blocking connect never waits on the pool.
	typ, err := s.rd.PeekType()
	if err != nil {
		return err
	}
	if typ == 'X' {
		return errClientTerminated
	}
	lease, err := route.Pool.Acquire(ctx)
	if err != nil {
		s.sendError(wire.SeverityFatal, err)
		return err
	}
	defer lease.Release()
	srv := lease.Server()
	if err := s.attach(ctx, srv, params); err != nil {
		s.sendError(wire.SeverityFatal, err)
		return err
	}
	r := s.relay(srv)
	s.finish(ctx, srv, r)
	return r.err
}

// greetingParams are the parameters a new client is told about: those of a
// fresh server of its pool. Only the very first client of a pool waits for
// a server to learn them.
func (s *Session) greetingParams(ctx context.Context, route Route) (map[string]string, error) {
	if p := route.Params.Load(); p != nil {
		return p, nil
	}
	lease, err := route.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	return lease.Server().Params(), nil
}

// attach prepares a leased server for this client: it applies the client's
// settings and tells the client about every reported parameter whose value
// differs from what it was last told. Only then can cancels reach it.
func (s *Session) attach(ctx context.Context, srv *backend.Conn, params []wire.Param) error {
	if err := srv.SyncParams(ctx, params); err != nil {
		return err
	}
	var buf []byte
	for k, v := range srv.Params() {
		if old, ok := s.reported[k]; !ok || old != v {
			buf = wire.Append(buf, &pgproto3.ParameterStatus{Name: k, Value: v})
			s.reported[k] = v
		}
	}
	if len(buf) > 0 {
		if _, err := s.conn.Write(buf); err != nil {
			return err
		}
	}
	s.setLink(srv)
	return nil
}

// loginReply is what PostgreSQL sends after authentication: AuthenticationOk,
// the reported parameters, the client's cancel key (pgvalve's own, never a
// server's) and ReadyForQuery.
func loginReply(params map[string]string, key cancel.Key) []byte {
	buf := wire.Append(nil, &pgproto3.AuthenticationOk{})
	for k, v := range params {
		buf = wire.Append(buf, &pgproto3.ParameterStatus{Name: k, Value: v})
	}
	buf = wire.Append(buf, &pgproto3.BackendKeyData{ProcessID: key.PID, SecretKey: key.Secret})
	return wire.Append(buf, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// relayResult says how a relay ended.
type relayResult struct {
	err       error
	serverErr error // the server connection failed
	// pending counts Query, Sync and FunctionCall messages sent without
	// their ReadyForQuery yet; lastSafe says the last client message ended
	// a request. Both zero/true means the server is between requests.
	pending  int64
	lastSafe bool
}

// relay copies messages both ways until the client leaves or either side
// fails. The client side runs here; the server side in one goroutine that
// relay always waits for.
func (s *Session) relay(srv *backend.Conn) relayResult {
	var pending atomic.Int64
	var stopping atomic.Bool
	serverDone := make(chan error, 1)
	go func() {
		err := s.serverToClient(srv, &pending)
		if !stopping.Load() {
			// Wake the client side so the session can end.
			_ = s.conn.SetReadDeadline(time.Unix(1, 0))
		}
		serverDone <- err
	}()
	res := relayResult{lastSafe: true}
	res.err = s.clientToServer(srv, &pending, &res.lastSafe)
	// The client has left or failed: stop the server side wherever it
	// blocks, reading the server or writing to a client that stopped reading.
	stopping.Store(true)
	_ = srv.NetConn().SetReadDeadline(time.Unix(1, 0))
	_ = s.conn.SetWriteDeadline(time.Unix(1, 0))
	serverErr := <-serverDone
	_ = srv.NetConn().SetDeadline(time.Time{})
	_ = s.conn.SetDeadline(time.Time{})
	if serverErr != nil && !isDeadline(serverErr) {
		res.serverErr = serverErr
	}
	res.pending = pending.Load()
	return res
}

// errClientTerminated ends a session whose client sent Terminate.
var errClientTerminated = errors.New("client sent Terminate")

func (s *Session) clientToServer(srv *backend.Conn, pending *atomic.Int64, lastSafe *bool) error {
	out := srv.NetConn()
	for {
		var requests int64
		for {
			f, ok, err := s.rd.Next()
			if err != nil {
				return &protocolViolation{err}
			}
			if !ok {
				break
			}
			if !wire.IsFrontendType(f.Type) {
				return &protocolViolation{fmt.Errorf("invalid frontend message type %d", f.Type)}
			}
			switch f.Type {
			case 'X':
				span := s.rd.Take()
				return s.forward(out, span[:len(span)-f.Total()], pending, requests, errClientTerminated)
			case 'Q', 'S', 'F':
				requests++
				*lastSafe = true
			case 'c', 'f':
				*lastSafe = true
			default:
				*lastSafe = false
			}
		}
		if err := s.forward(out, s.rd.Take(), pending, requests, nil); err != nil {
			return err
		}
		if err := s.rd.Fill(); err != nil {
			return err
		}
	}
}

// forward counts the requests in span as pending before writing it, so the
// server side can never see their ReadyForQuery first.
func (s *Session) forward(out interface{ Write([]byte) (int, error) }, span []byte, pending *atomic.Int64, requests int64, then error) error {
	if len(span) > 0 {
		pending.Add(requests)
		if _, err := out.Write(span); err != nil {
			return fmt.Errorf("write to server: %w", err)
		}
	}
	return then
}

func (s *Session) serverToClient(srv *backend.Conn, pending *atomic.Int64) error {
	rd := srv.Reader()
	for {
		for {
			f, ok, err := rd.Next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			switch f.Type {
			case 'Z':
				pending.Add(-1)
				srv.Observe(f)
			case 'S':
				srv.Observe(f)
			}
		}
		if span := rd.Take(); len(span) > 0 {
			if _, err := s.conn.Write(span); err != nil {
				return fmt.Errorf("write to client: %w", err)
			}
		}
		if err := rd.Fill(); err != nil {
			return err
		}
	}
}

// protocolViolation is a malformed, oversized or unknown client message.
// The client is ended with 08P01 once the server side has stopped, so the
// error never interleaves with relayed bytes.
type protocolViolation struct{ err error }

func (e *protocolViolation) Error() string { return "protocol violation: " + e.err.Error() }
func (e *protocolViolation) Unwrap() error { return e.err }

// finish decides, once the relay is over, whether the server can serve
// another client: only if the client left between requests outside a
// transaction and the reset query succeeds. Otherwise the server is marked
// broken so Release closes it; a server still running the client's query
// is cancelled first so it does not run on unobserved.
func (s *Session) finish(ctx context.Context, srv *backend.Conn, r relayResult) {
	s.setLink(nil)
	var pv *protocolViolation
	if errors.As(r.err, &pv) {
		s.log.Info("protocol violation", "err", pv.err)
		s.fatal(wire.CodeProtocolViolation, pv.Error())
	}
	switch {
	case r.serverErr != nil:
		srv.MarkBroken("server connection failed: " + r.serverErr.Error())
		s.sendError(wire.SeverityFatal, fmt.Errorf("server connection lost: %w", r.serverErr))
		return
	case r.pending != 0 || !r.lastSafe:
		// Not the session's context: on shutdown it is already done, and
		// the query must still be stopped.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = srv.Cancel(cctx)
		cancel()
		srv.MarkBroken("client left during a request")
		return
	case srv.TxStatus() != 'I':
		srv.MarkBroken("client left inside a transaction")
		return
	}
	if s.env.ResetQuery != "" {
		rctx, cancel := context.WithTimeout(ctx, resetTimeout)
		defer cancel()
		if err := srv.Exec(rctx, s.env.ResetQuery); err != nil {
			srv.MarkBroken("reset query failed: " + err.Error())
		}
	}
}
