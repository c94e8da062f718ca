package session

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/sqlscan"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// pins is the session state a transaction-pooled client has left on its
// server that cannot follow it to another: while any is there the client
// keeps its server across transactions (detachLocked), and a server it
// leaves with any is cleaned before another client gets it (finish).
// Recorded as statements are sent, before they run: a statement that
// fails leaves the client pinned until it leaves or clears the state,
// the safe side.
type pins struct {
	locks   map[string]int  // session advisory locks by argument text, taken minus released
	temp    bool            // a temporary object may exist
	cursors map[string]bool // WITH HOLD cursors open
	listens map[string]bool // channels LISTENed to
	loaded  bool            // LOAD ran: nothing undoes it but closing the server
	// prepared are SQL PREPAREd statements the tracker does not carry
	// (tracking off, or a name it leaves to the server).
	prepared map[string]bool
	// all: session_state = "pin-all" and a session-level statement ran;
	// only the client's leaving ends it.
	all bool
	// unknownSet: a set_config whose name, scope or value is not a
	// literal changed a setting pgvalve cannot replay elsewhere; RESET
	// ALL or DISCARD ALL ends it.
	unknownSet bool
}

// pinned reports whether the client must keep its server.
func (p *pins) pinned() bool {
	return len(p.locks) > 0 || p.temp || len(p.cursors) > 0 || len(p.listens) > 0 || p.loaded || p.unknownSet ||
		len(p.prepared) > 0 || p.all
}

// causes names what pins the client, for SHOW CLIENTS and the logs ("" when
// nothing does).
func (p *pins) causes() string {
	var c []string
	if len(p.locks) > 0 {
		c = append(c, "advisory_lock")
	}
	if p.temp {
		c = append(c, "temp_table")
	}
	if len(p.cursors) > 0 {
		c = append(c, "hold_cursor")
	}
	if len(p.listens) > 0 {
		c = append(c, "listen")
	}
	if p.loaded {
		c = append(c, "load")
	}
	if p.unknownSet {
		c = append(c, "unknown_setting")
	}
	if len(p.prepared) > 0 {
		c = append(c, "sql_prepare")
	}
	if p.all {
		c = append(c, "pin_all")
	}
	return strings.Join(c, ",")
}

// apply records the effects of one query text; sqlPrepare says SQL
// PREPAREd statements stay on the server (no tracker carries them).
func (p *pins) apply(effects []sqlscan.Effect, sqlPrepare bool) {
	for _, e := range effects {
		switch e.Kind {
		case sqlscan.AdvisoryLock:
			p.locks = inc(p.locks, e.Name, 1)
		case sqlscan.AdvisoryUnlock:
			p.locks = inc(p.locks, e.Name, -1)
		case sqlscan.AdvisoryUnlockAll:
			p.locks = nil
		case sqlscan.TempObject:
			p.temp = true
		case sqlscan.DiscardTemp:
			p.temp = false
		case sqlscan.DiscardAll:
			// DISCARD ALL also unlocks, closes, unlistens and deallocates
			// everything.
			p.locks, p.temp, p.cursors, p.listens = nil, false, nil, nil
			p.unknownSet, p.prepared = false, nil
		case sqlscan.Prepare:
			if sqlPrepare {
				p.prepared = set(p.prepared, e.Name, true)
			}
		case sqlscan.Deallocate:
			p.prepared = set(p.prepared, e.Name, false)
		case sqlscan.Reset:
			if e.Name == "" {
				p.unknownSet = false // RESET ALL
			}
		case sqlscan.HoldCursor:
			p.cursors = set(p.cursors, e.Name, true)
		case sqlscan.CloseCursor:
			p.cursors = set(p.cursors, e.Name, false)
		case sqlscan.Listen:
			p.listens = set(p.listens, e.Name, true)
		case sqlscan.Unlisten:
			p.listens = set(p.listens, strings.TrimSuffix(e.Name, "*"), false)
		case sqlscan.Load:
			p.loaded = true
		}
	}
}

func inc(m map[string]int, k string, by int) map[string]int {
	if m == nil {
		m = make(map[string]int)
	}
	if m[k] += by; m[k] <= 0 {
		delete(m, k)
	}
	return m
}

// set adds or removes k; removing "" removes all.
func set(m map[string]bool, k string, on bool) map[string]bool {
	switch {
	case on && m == nil:
		return map[string]bool{k: true}
	case on:
		m[k] = true
	case k == "":
		return nil
	default:
		delete(m, k)
	}
	return m
}

// clone is a copy finish can use after the session's lock is let go.
func (p *pins) clone() pins {
	return pins{locks: maps.Clone(p.locks), temp: p.temp, cursors: maps.Clone(p.cursors),
		listens: maps.Clone(p.listens), loaded: p.loaded, unknownSet: p.unknownSet,
		prepared: maps.Clone(p.prepared), all: p.all}
}

// cleanup is what a server left with p must run before another client
// gets it; ok false: it must be closed instead (LOAD cannot be undone).
// It leaves protocol-level prepared statements and settings alone:
// pgvalve tracks those.
func (p *pins) cleanup() (sql string, ok bool) {
	if p.loaded {
		return "", false
	}
	var parts []string
	if len(p.locks) > 0 {
		parts = append(parts, "SELECT pg_advisory_unlock_all()")
	}
	if len(p.cursors) > 0 {
		parts = append(parts, "CLOSE ALL")
	}
	if len(p.listens) > 0 {
		parts = append(parts, "UNLISTEN *")
	}
	if p.temp {
		parts = append(parts, "DISCARD TEMP")
	}
	for _, name := range slices.Sorted(maps.Keys(p.prepared)) {
		parts = append(parts, "DEALLOCATE "+quoteIdent(name))
	}
	return strings.Join(parts, "; "), true
}

// quoteIdent quotes name as an SQL identifier, as PostgreSQL's
// quote_ident does when quoting is needed.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// queryText is the SQL a Query or Parse message carries, nil for any
// other message (and for one streamed past the buffer, whose body the
// relay does not hold).
func queryText(typ byte, body []byte) []byte {
	switch typ {
	case 'Q':
		if i := bytes.IndexByte(body, 0); i >= 0 {
			return body[:i]
		}
	case 'P':
		name := bytes.IndexByte(body, 0)
		if name < 0 {
			return nil
		}
		if i := bytes.IndexByte(body[name+1:], 0); i >= 0 {
			return body[name+1 : name+1+i]
		}
	}
	return nil
}

// notePins records the session state the batch's statements leave: what
// pins the client to its server, and the settings that follow it
// (clientSets). The caller holds s.mu.
func (s *Session) notePinsLocked(frames []wire.Frame) {
	if s.quiet {
		for _, f := range frames {
			if _, wantsReady := requestEnds(f.Type); wantsReady {
				s.mu.sets.asked++
			}
		}
		s.countPinLocked() // a place taken for a batch that never went
		return
	}
	was := s.mu.pins.causes()
	s.effectsOf(frames, true, func(f wire.Frame, q []byte, effects []sqlscan.Effect) {
		if len(effects) > 0 {
			s.applyPins(&s.mu.pins, q, effects)
			s.mu.sets.sent(q, effects)
			s.unlistenedLocked(effects)
		}
		if _, wantsReady := requestEnds(f.Type); wantsReady {
			s.mu.sets.asked++
		}
	})
	if s.tooManyEffectStatements() {
		s.mu.pins.unknownSet = true
	}
	if now := s.mu.pins.causes(); now != was {
		s.countPinLocked()
		s.status.setPin(now)
		s.log().Debug("session state pins the client to its server", "pin", now, "was", was)
	}
}

// countPinLocked keeps the client's count in the pool's pinned clients
// (max_pinned_servers) equal to whether it is pinned: a pin that was not
// refused before it was sent (pinRefused) is counted even past the bound.
func (s *Session) countPinLocked() {
	switch pinned := s.mu.pins.pinned(); {
	case pinned && !s.mu.pinSlot:
		s.route.Pinned.force()
		s.mu.pinSlot = true
	case !pinned && s.mu.pinSlot:
		s.route.Pinned.put()
		s.mu.pinSlot = false
	}
}

// effectWords are the words without which a query has no effect pins
// track: a cheap test before the lexer runs on the hot path.
var effectWords = [][]byte{[]byte("advisory"), []byte("temp"), []byte("discard"), []byte("hold"),
	[]byte("close"), []byte("listen"), []byte("load"), []byte("reset"), []byte("set_config"),
	[]byte("prepare"), []byte("deallocate")}

// effectStart holds, for each byte, the effectWords it may start, in
// either case ('s' also starts SET, checked apart).
var effectStart = func() (t [256][][]byte) {
	for _, w := range effectWords {
		t[w[0]] = append(t[w[0]], w)
		t[w[0]&^0x20] = t[w[0]]
	}
	return t
}()

// effectPair has, for each byte, a bit per letter that may follow it in an
// effect word or SET ('a' is bit 0), in either case: most pairs of a text
// start none and cost two lookups, with no word compared.
var effectPair = func() (t [256]uint32) {
	for _, w := range append(effectWords, []byte("set")) {
		t[w[0]] |= 1 << (w[1] - 'a')
		t[w[0]&^0x20] = t[w[0]]
	}
	return t
}()

// mayHaveEffects looks for any of effectWords, or a SET that may start a
// statement, in one pass over q.
func mayHaveEffects(q []byte) bool {
	for i := 0; i+1 < len(q); i++ {
		next := q[i+1] | 0x20
		if next < 'a' || next > 'z' || effectPair[q[i]]&(1<<(next-'a')) == 0 {
			continue
		}
		c := q[i]
		for _, w := range effectStart[c] {
			if i+len(w) <= len(q) && bytes.EqualFold(q[i:i+len(w)], w) {
				return true
			}
		}
		if c|0x20 == 's' && i+3 <= len(q) && bytes.EqualFold(q[i:i+3], []byte("set")) && startsStatement(q, i) &&
			(i+3 == len(q) || !isWordByte(q[i+3])) {
			return true
		}
	}
	return false
}

// startsStatement reports whether the word at i may start a statement:
// nothing but blanks before it on its line follows a word (UPDATE t SET
// does not count; a SET after a newline or a comment may).
func startsStatement(q []byte, i int) bool {
	for i--; i >= 0; i-- {
		switch q[i] {
		case ' ', '\t', '\r', '\v', '\f': // PostgreSQL's blanks
			continue
		case '\n', ';', '/':
			return true
		}
		return false
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80
}

// cleaned takes off srv the session state the leaving client left on it
// (left), so that no lock, temporary table, cursor or LISTEN reaches the
// server's next client; a server that cannot be cleaned is marked to be
// closed. It reports whether srv may serve again.
func (s *Session) cleaned(ctx context.Context, srv *backend.Conn, left pins) bool {
	sql, ok := left.cleanup()
	switch {
	case !ok:
		srv.MarkBroken(reason.PinnedStateLeft, left.causes())
		return false
	case sql == "":
		return true
	}
	if err := srv.Exec(ctx, sql); err != nil {
		srv.MarkBroken(reason.ResetQueryFailed, err.Error())
		return false
	}
	s.log().Debug("cleaned the session state the client left on its server", "pin", left.causes())
	return true
}
