package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// sendError tells the client why pgvalve could not serve it, with the
// SQLSTATE that names the situation: the server's own error when the server
// refused, 53300 for a pool wait that timed out, 08006 for a server that
// cannot be reached.
func (s *Session) sendError(severity string, err error) { SendError(s.conn, severity, err) }

// SendError is sendError for a client that has no session yet (the front
// door's login checks).
func SendError(conn net.Conn, severity string, err error) {
	code, msg := classify(err)
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(wire.AppendError(nil, severity, code, msg))
}

func classify(err error) (code, msg string) {
	var pgErr *pgconn.PgError
	var waitErr *pool.WaitTimeoutError
	var downErr *pool.UnreachableError
	var netErr net.Error
	switch {
	case errors.As(err, &downErr):
		// Before the server's own errors: a server still starting up
		// (57P03) that never came back within the wait is unreachable.
		return wire.CodeConnectionFailure, fmt.Sprintf("could not connect to the server within %s: %v", downErr.Waited, downErr.Err)
	case errors.As(err, &pgErr):
		return pgErr.Code, pgErr.Message
	case errors.As(err, &waitErr):
		return wire.CodeTooManyConnections, waitErr.Error()
	case errors.Is(err, pool.ErrClosed), errors.Is(err, context.Canceled):
		return wire.CodeAdminShutdown, "pgvalve is shutting down"
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return wire.CodeConnectionFailure, fmt.Sprintf("could not connect to the server: %v", err)
	default:
		return wire.CodeConnectionFailure, fmt.Sprintf("server connection failed: %v", err)
	}
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
