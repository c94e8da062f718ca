package session

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

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
	s.endLink(ctx, l, cause)
	s.mu.Lock()
	st := s.mu.st // final: the server side has ended
	s.mu.idleSince = time.Now()
	s.mu.Unlock()
	s.log().Info("server lost under a client", "pid", l.srv.PID(), "pending", st.pending, "status", string(st.status), "err", cause)

	status := byte('I')
	if st.status != 'I' {
		status = 'E'
		s.txLost = true
		if st.pending == 0 {
			s.lostWhy = cause // the client learns with its next request
		}
	}
	var out []byte
	// The server may have run it before it went: say so, since a client
	// that retries could run it twice.
	for i := range st.pending {
		if i == 0 && st.errored {
			out = appendReady(out, status) // its error came from the server
		} else {
			out = s.appendFailed(out, reason.RequestLost, status, cause)
		}
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
	rd := wire.NewReader(bytes.NewReader(out), len(out), len(out))
	_ = rd.Fill()
	for {
		f, ok, err := rd.Next()
		if err != nil || !ok {
			break
		}
		if err := s.tr.Server(f.Type, f.Body, f.Off); err != nil {
			s.log().Debug("statement tracker on made-up answers", "err", err)
			break
		}
	}
	return append([]byte(nil), s.tr.ApplyAnswers(out)...)
}

// appendFailed appends PostgreSQL's answer to a request that failed: an
// ERROR for r (its message filled in with args), then ReadyForQuery with
// status; the error is counted.
func (s *Session) appendFailed(dst []byte, r reason.Reason, status byte, args ...any) []byte {
	s.env.Errors.Add(r.Code())
	return appendReady(r.AppendError(dst, wire.SeverityError, args...), status)
}

func appendReady(dst []byte, status byte) []byte {
	return wire.Append(dst, &pgproto3.ReadyForQuery{TxStatus: status})
}

// endsWithRequests reports whether a batch of client messages ends with
// whole requests that each want a ReadyForQuery, so pgvalve can answer it
// alone.
func endsWithRequests(requests int, last byte) bool {
	_, wantsReady := requestEnds(last)
	return requests > 0 && wantsReady
}

// answerLostTx answers, without a server, a batch from a client whose
// transaction was lost, where PostgreSQL's answer is known: ROLLBACK (or
// COMMIT, which cannot commit) as one simple query ends the transaction,
// and the first request after a loss the client has not heard of gets
// 08006. Anything else goes to a server in a failed transaction block
// (enterLostTx). done says the batch was answered here.
func (s *Session) answerLostTx(requests int, last byte) (done bool, err error) {
	if len(s.frames) == 1 && s.frames[0].Type == 'Q' && s.frames[0].Body != nil {
		if verb, ok := txExit(s.frames[0].Body); ok {
			var out []byte
			if verb == "commit" && s.lostWhy != nil {
				out = s.appendFailed(out, reason.TxLost, 'I', s.lostWhy)
			} else {
				out = appendReady(wire.Append(out, &pgproto3.CommandComplete{CommandTag: []byte("ROLLBACK")}), 'I')
			}
			s.txLost, s.lostWhy = false, nil
			_, err := s.conn.Write(out)
			return true, err
		}
	}
	if s.lostWhy == nil || !endsWithRequests(requests, last) {
		return false, nil
	}
	out := s.appendFailed(nil, reason.TxLost, 'E', s.lostWhy)
	for range requests - 1 {
		out = s.appendFailed(out, reason.InFailedTx, 'E')
	}
	s.lostWhy = nil
	// The batch may end inside a message bigger than the buffer: what is
	// still to come of it is answered already, so it goes nowhere.
	s.partialSent = s.rd.Streaming() != 0
	s.skipRest()
	_, err = s.conn.Write(out)
	return true, err
}

// txExit reports whether a simple query's text (NUL-terminated) is one
// statement that ends a transaction block, and its verb: commit or
// rollback (END is COMMIT, ABORT is ROLLBACK).
func txExit(body []byte) (verb string, ok bool) {
	words := strings.Fields(strings.ToLower(strings.TrimRight(string(body), "\x00; \t\r\n")))
	if len(words) == 0 || len(words) > 2 || (len(words) == 2 && words[1] != "work" && words[1] != "transaction") {
		return "", false
	}
	switch words[0] {
	case "commit", "end":
		return "commit", true
	case "rollback", "abort":
		return "rollback", true
	}
	return "", false
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
		srv.MarkBroken(reason.LostTxSetupFailed, err.Error())
		return err
	}
	return nil
}

// serverFatal reports whether a server ErrorResponse body is a FATAL (the
// server is about to close), returning it decoded.
func serverFatal(body []byte) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(backend.DecodeError(body), &pgErr) {
		return nil, false
	}
	sev := pgErr.SeverityUnlocalized
	if sev == "" {
		sev = pgErr.Severity
	}
	return pgErr, sev == "FATAL" || sev == "PANIC"
}

// skipRest drops what is still to come of a message whose start went to a
// lost server or was answered without one: it must go nowhere else.
func (s *Session) skipRest() {
	if s.partialSent && s.rd.Streaming() != 0 {
		s.skip = s.rd.StreamLeft()
	}
	s.partialSent = false
}

// dropContinuation drops from span the bytes of a message whose start
// went to a lost server (all of span when it goes on past it), moving the
// batch's frames and a protocol violation's offset with it.
func (s *Session) dropContinuation(span []byte, bad *protocolViolation) []byte {
	s.partialSent = false
	n := len(span)
	if s.firstFrame >= 0 {
		n = s.firstFrame
	} else if s.rd.Streaming() != 0 {
		s.skip = s.rd.StreamLeft()
	}
	s.shiftBatch(n, bad)
	return span[n:]
}

// shiftBatch moves the batch's frames and a protocol violation's offset
// by the n bytes dropped from the front of its span.
func (s *Session) shiftBatch(n int, bad *protocolViolation) {
	for i := range s.frames {
		s.frames[i].Off -= n
	}
	if bad != nil {
		bad.at -= n
	}
	if s.firstFrame >= 0 {
		s.firstFrame -= n
	}
}

// skipAnswered drops from the front of span what is left of a message
// already answered without a server (skip), moving the batch's frames and
// a protocol violation's offset with it.
func (s *Session) skipAnswered(span []byte, bad *protocolViolation) []byte {
	if s.skip == 0 {
		return span
	}
	n := min(s.skip, len(span))
	s.skip -= n
	s.shiftBatch(n, bad)
	return span[n:]
}
