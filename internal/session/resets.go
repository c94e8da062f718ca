package session

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// A client's RESET or DISCARD ALL takes a server back to the server's own
// defaults; on a connection of its own the client would go back to what
// it asked for at startup (application_name, TimeZone, the options
// parameter's settings, ...). pgvalve shows the client what its own server
// would have reported, and puts the startup values back on the server
// before the client's next statement.

// resetsSettings reports whether a CommandComplete tag says the client
// took settings back to their defaults.
func resetsSettings(tag []byte) bool {
	switch string(tag) {
	case "RESET\x00", "DISCARD ALL\x00":
		return true
	}
	return false
}

// startupValue is the value the client gave name at startup, if any.
func (s *Session) startupValue(name string) (string, bool) {
	for i := len(s.params) - 1; i >= 0; i-- {
		if strings.EqualFold(s.params[i].Name, name) {
			return s.params[i].Value, true
		}
	}
	return "", false
}

// resetReport handles a ParameterStatus that follows a reset in the
// client's request: when the server went back to its default where the
// client's own server would have gone back to the client's startup value,
// the client is told that value (or nothing, when it was told it already)
// and the server gets it back. ok says the message is not relayed as sent;
// out is what the client sees instead.
func (s *Session) resetReport(l *link, ps *pgproto3.ParameterStatus) (out []byte, ok bool) {
	sv, given := s.startupValue(ps.Name)
	if !given || sv == ps.Value || !isFollowed(ps.Name) {
		return nil, false
	}
	if def := s.route.Params.Load(); def == nil || def[ps.Name] != ps.Value {
		return nil, false // not the server's default: the client set it
	}
	l.resync = true
	s.wantKey, s.toldKey = "", ""
	if s.reported[ps.Name] == sv {
		return nil, true // no change, as far as the client can tell
	}
	s.reported[ps.Name] = sv
	return wire.Append(nil, &pgproto3.ParameterStatus{Name: ps.Name, Value: sv}), true
}

// replaceAnswer replaces the server message at off (n bytes) in the
// batch being relayed with out.
func (s *Session) replaceAnswer(off, n int, out []byte) {
	if s.tr != nil {
		s.mu.Lock()
		s.tr.ReplaceAnswer(off, n, out)
		s.mu.Unlock()
		return
	}
	s.answerEdits.ReplaceWith(off, n, out)
}

// resync puts the client's settings back on its server after a reset, once
// the request is answered, the client has sent nothing since and no
// transaction is open. It runs
// on the server side, which owns the server's reader; the client side
// cannot write meanwhile (wmu). If the client already sent more, the next
// reset or server it gets does it.
func (s *Session) resync(ctx context.Context, l *link) {
	if !s.wmu.TryLock() {
		return
	}
	defer s.wmu.Unlock()
	// Inside a transaction only if the reset ran in it: a ROLLBACK takes
	// both back. After a reset outside (DISCARD ALL, then BEGIN), put back
	// inside, the settings would go with a ROLLBACK and the client would
	// hear of it: they wait for the transaction's end.
	s.mu.Lock()
	status := s.mu.st.status
	quiet := s.mu.cur == l && s.mu.st.idle() && (status == 'I' || status == 'T' && l.resetInTx)
	s.mu.Unlock()
	if !quiet {
		return
	}
	l.resync = false
	want := s.wantedParams()
	s.wantKey = ""
	if err := l.srv.SyncFor(ctx, s.id, "", want); err != nil {
		s.log.Debug("putting the client's settings back after its reset", "err", err)
	}
}
