package session

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// lostLink returns the client's current link if its server side ended with
// the server lost, so the client side must answer for it; nil otherwise.
func (s *Session) lostLink() *link {
	l := s.current()
	if l == nil {
		return nil
	}
	select {
	case <-l.done:
	default:
		return nil
	}
	if !errors.Is(l.err, errServerLost) {
		return nil
	}
	return l
}

// recoverLost answers for a server lost under a pooled client (design
// invariant 3): the server is closed, nothing is sent again, each request
// still unanswered gets 08006 and a ReadyForQuery, and the client goes on.
// A transaction it was in is gone; until the client ends it, its
// statements fail as in any aborted transaction (txLost). Session pooling
// ends the client instead: its session state went with the server.
func (s *Session) recoverLost(ctx context.Context, l *link, cause error) error {
	if cause == nil {
		cause = l.err
	}
	if s.route.Mode == config.PoolSession {
		return cause
	}
	l.srv.MarkBroken(cause.Error())
	s.endLink(ctx, l)
	s.mu.Lock()
	st := s.mu.st // final: the server side has ended
	s.mu.idleSince = time.Now()
	s.mu.Unlock()
	s.log.Info("server lost under a client", "pid", l.srv.PID(), "pending", st.pending, "status", string(st.status), "err", cause)

	status := byte('I')
	if st.status != 'I' {
		status = 'E'
		s.txLost = true
	}
	var out []byte
	msg := cause.Error() + "; the request was not sent again"
	for i := range st.pending {
		if i > 0 || !st.errored {
			out = wire.AppendError(out, wire.SeverityError, wire.CodeConnectionFailure, msg)
		}
		out = wire.Append(out, &pgproto3.ReadyForQuery{TxStatus: status})
	}
	if len(out) == 0 {
		return nil // nothing was asked; the next request finds out
	}
	if s.tr != nil {
		// The statement tracker sees the answers the client sees, so it
		// undoes the effects of the requests that failed.
		out = s.trackAnswers(out)
	}
	_, err := s.conn.Write(out)
	return err
}

// trackAnswers runs answers pgvalve made up through the tracker as if the
// server had sent them.
func (s *Session) trackAnswers(out []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tr.BeginAnswers()
	for off := 0; off+5 <= len(out); {
		n := 1 + int(uint32(out[off+1])<<24|uint32(out[off+2])<<16|uint32(out[off+3])<<8|uint32(out[off+4]))
		if err := s.tr.Server(out[off], out[off+5:off+n], off); err != nil {
			s.log.Debug("statement tracker on made-up answers", "err", err)
			break
		}
		off += n
	}
	return append([]byte(nil), s.tr.ApplyAnswers(out)...)
}

// abortQuery leaves a server in a failed transaction block, for a client
// whose transaction was lost with its server: PostgreSQL itself then
// refuses its statements (25P02) until it ends the transaction, in every
// protocol form. It is never shown to the client.
const abortQuery = "BEGIN; SELECT 1/0"

// enterLostTx puts srv in a failed transaction block for a client in txLost.
func (s *Session) enterLostTx(ctx context.Context, srv *backend.Conn) error {
	err := srv.Exec(ctx, abortQuery)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || srv.TxStatus() != 'E' {
		if err == nil {
			err = errors.New("server did not enter a failed transaction")
		}
		srv.MarkBroken("entering a lost transaction: " + err.Error())
		return err
	}
	return nil
}

// serverFatal reports whether a server ErrorResponse body is a FATAL (the
// server is about to close), returning it decoded.
func serverFatal(body []byte) (*pgconn.PgError, bool) {
	var msg pgproto3.ErrorResponse
	if msg.Decode(body) != nil {
		return nil, false
	}
	sev := msg.SeverityUnlocalized
	if sev == "" {
		sev = msg.Severity
	}
	if sev != "FATAL" && sev != "PANIC" {
		return nil, false
	}
	return pgconn.ErrorResponseToPgError(&msg), true
}
