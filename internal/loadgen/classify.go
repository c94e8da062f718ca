package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class is what an application sees of a failure, in the words its logs
// would use.
type Class string

const (
	ConnectRefused  Class = "connect refused"      // nothing listens: the app's "Can't reach database server"
	ConnectTimeout  Class = "connect timeout"      // a login that got no answer in time
	TooManyConns    Class = "too many connections" // 53300 at login (PostgreSQL's max_connections, a pooler's cap)
	PoolTimeout     Class = "pool timeout"         // the app's own pool had no connection for it in time
	ConnectionLost  Class = "connection lost"      // the connection broke under a query
	QueryTimeout    Class = "query timeout"        // the app gave up waiting for an answer
	ServerError     Class = "server error"         // an ErrorResponse: see the SQLSTATE
	OtherConnect    Class = "connect failed"       // a login failed for another reason
	OtherClientSide Class = "other"
)

// Failure is one classified error: its class and, for errors from the
// server, its SQLSTATE.
type Failure struct {
	Class Class
	Code  string
}

// Classify names what failed. acquiring says the error came from getting
// a connection from the app's pool (which logs in when it has none idle),
// not from a query on one.
func Classify(err error, acquiring bool) Failure {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "53300" && acquiring {
			return Failure{TooManyConns, pgErr.Code}
		}
		if acquiring {
			return Failure{OtherConnect, pgErr.Code}
		}
		return Failure{ServerError, pgErr.Code}
	}
	timeout := errors.Is(err, context.DeadlineExceeded)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		timeout = true
	}
	var connectErr *pgconn.ConnectError
	connecting := errors.As(err, &connectErr)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Failure{Class: ConnectRefused}
	case connecting && timeout:
		return Failure{Class: ConnectTimeout}
	case acquiring && timeout:
		return Failure{Class: PoolTimeout}
	case connecting || acquiring:
		return Failure{Class: OtherConnect}
	case timeout:
		return Failure{Class: QueryTimeout}
	case lost(err):
		return Failure{Class: ConnectionLost}
	}
	return Failure{Class: OtherClientSide}
}

// lost reports an error of a connection that broke under a query.
func lost(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "unexpected EOF")
}
