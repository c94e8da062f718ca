package session

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// sendError tells the client why pgvalve could not serve it, with the
// SQLSTATE that names the situation: the server's own error when the server
// refused, 53300 for a pool wait that timed out, 08006 for a server that
// cannot be reached.
func (s *Session) sendError(severity string, err error) { s.env.SendError(s.conn, severity, err) }

// SendError is sendError for a client that has no session yet (the front
// door's login checks). The error is counted by its SQLSTATE.
func (e *Env) SendError(conn net.Conn, severity string, err error) {
	_, code, msg := Classify(err)
	e.Errors.Add(code)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(wire.AppendError(nil, severity, code, msg))
}

// Classify names why a client got no server, or lost the one it had, and
// the code and message it is told: the reason's own, except that a server's
// refusal (reason.ServerRefused) passes on the server's code and message.
func Classify(err error) (r reason.Reason, code, msg string) {
	var pgErr *pgconn.PgError
	var waitErr *pool.WaitTimeoutError
	var downErr *pool.UnreachableError
	var netErr net.Error
	var tlsErr *backend.TLSError
	switch {
	case errors.As(err, &downErr):
		// Before the server's own errors: a server still starting up
		// (57P03) that never came back within the wait is unreachable.
		r = reason.ServerUnreachable
		return r, r.Code(), r.Message(downErr.Waited, downErr.Err)
	case errors.As(err, &pgErr):
		return reason.ServerRefused, pgErr.Code, pgErr.Message
	case errors.As(err, &tlsErr):
		// Before net.Error: an alert from the server is one too.
		r = reason.ServerTLSFailed
		return r, r.Code(), r.Message(tlsErr)
	case errors.As(err, &waitErr):
		r = reason.WaitTimeout
		return r, r.Code(), r.Message(waitErr)
	case errors.Is(err, pool.ErrClosed), errors.Is(err, context.Canceled):
		r = reason.PoolShutDown
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		r = reason.ConnectFailed
		return r, r.Code(), r.Message(err)
	default:
		r = reason.ServerFailed
		return r, r.Code(), r.Message(err)
	}
	return r, r.Code(), r.Message()
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
