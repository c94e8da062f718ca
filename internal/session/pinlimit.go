package session

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/sqlscan"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// max_pinned_servers: a batch that would pin a client that is not pinned
// yet takes one of its pool's pinned places before it is sent; with none
// left, it is refused before anything in it runs. A client holding no
// server is answered by pgvalve; one inside a transaction gets the error
// from its server (raisePinRefused), so the transaction fails there as
// PostgreSQL fails it. A batch pgvalve cannot answer whole (a message
// still streaming in, a request without its Sync yet) is let through and
// counted past the bound.

// pinRefused reports whether the batch in s.frames must be refused, and
// what it would pin; when it may go, a pin it makes has its place taken.
func (s *Session) pinRefused(requests int, last byte) (refused bool, cause string) {
	if !s.detect || s.route.Pinned == nil || s.txLost ||
		!endsWithRequests(requests, last) || s.rd.Streaming() != 0 {
		return false, ""
	}
	if s.quiet {
		return false, "" // the usual batch: nothing more to look at
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pinSlot || s.mu.pins.pinned() {
		return false, ""
	}
	after := s.mu.pins.clone()
	s.effectsOf(s.frames, false, func(_ wire.Frame, q []byte, e []sqlscan.Effect) {
		if len(e) > 0 {
			s.applyPins(&after, q, e)
		}
	})
	if !after.pinned() {
		return false, ""
	}
	if s.route.Pinned.take() {
		s.mu.pinSlot = true
		return false, ""
	}
	return true, after.causes()
}

// refusePin answers a refused batch from a client holding no server: each
// request gets the error, as if it failed first thing.
func (s *Session) refusePin(requests int, cause string) error {
	s.log().Warn("refused a statement that would pin its client past max_pinned_servers", "pin", cause,
		"max_pinned_servers", s.route.Pinned.Max())
	var out []byte
	for range requests {
		out = s.appendFailed(out, reason.PinLimit, 'I', cause, s.route.Pinned.Max())
	}
	return s.writeClient(out, false)
}

// raisePinRefused replaces a refused batch from a client inside a
// transaction by as many Queries that raise the error on its server, so
// the transaction fails and the server says so as PostgreSQL would have
// for the batch's first request (the others get 25P02 there).
func (s *Session) raisePinRefused(requests int, cause string) []byte {
	s.log().Warn("refused a statement that would pin its client past max_pinned_servers", "pin", cause,
		"max_pinned_servers", s.route.Pinned.Max())
	s.env.Errors.Add(reason.PinLimit.Code())
	msg := strings.ReplaceAll(reason.PinLimit.Message(cause, s.route.Pinned.Max()), "'", "''")
	sql := "DO $pgvalve$BEGIN RAISE EXCEPTION USING ERRCODE = '" + reason.PinLimit.Code() +
		"', MESSAGE = '" + msg + "'; END$pgvalve$"
	var span []byte
	for range requests {
		span, _ = (&pgproto3.Query{String: sql}).Encode(span) // fails only past 1 GiB
	}
	s.frames, s.types = s.frames[:0], s.types[:0]
	for off := 0; off < len(span); off += len(span) / requests {
		n := len(span) / requests
		s.frames = append(s.frames, wire.Frame{Type: 'Q', Len: n - 5, Body: span[off+5 : off+n], Off: off})
		s.types = append(s.types, 'Q')
	}
	return span
}
