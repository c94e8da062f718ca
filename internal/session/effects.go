package session

import (
	"bytes"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// maxEffectStatements bounds the named statements with session-state
// effects a client may keep (stmtFx); past it, a new one pins the client
// as a setting pgvalve cannot follow would.
const maxEffectStatements = 1000

// A statement's effects happen each time it runs, not when it is
// prepared: a simple Query runs its text once; in the extended protocol,
// each Bind runs the statement it names (an Execute follows). So the
// texts of the client's prepared statements that have effects are kept
// by name (stmtFx), from their Parse to their Close, whether or not
// pgvalve tracks prepared statements, and whether or not the Parse went
// to a server (a deferred one did not).

// statementSQL is what a Parse prepares: the client's statement name and
// its text; ok false for a Parse too short to read.
func statementSQL(body []byte) (name string, q []byte, ok bool) {
	n := bytes.IndexByte(body, 0)
	if n < 0 {
		return "", nil, false
	}
	q = queryText('P', body)
	return string(body[:n]), q, q != nil
}

// boundStatement is the statement name a Bind runs.
func boundStatement(body []byte) (string, bool) {
	portal := bytes.IndexByte(body, 0)
	if portal < 0 {
		return "", false
	}
	name := bytes.IndexByte(body[portal+1:], 0)
	if name < 0 {
		return "", false
	}
	return string(body[portal+1 : portal+1+name]), true
}

// effectsOf walks frames in order and calls fn with the text of each
// statement they run that may have effects: a Query's, or the text of the
// statement a Bind names (prepared in this batch or before). Parses and
// Closes of statements change stmtFx only when commit is set; otherwise
// (a look ahead) this batch's own Parses are seen through a copy.
// It reports whether the batch prepares or closes a statement stmtFx
// holds or would hold.
func (s *Session) effectsOf(frames []wire.Frame, commit bool, fn func(f wire.Frame, q []byte, effects []sqlscan.Effect)) (touched bool) {
	fx := s.stmtFx
	copied := commit
	own := func() {
		touched = true
		if !copied {
			fx, copied = make(map[string]string, len(fx)+1), true
			for k, v := range s.stmtFx {
				fx[k] = v
			}
		}
	}
	for _, f := range frames {
		var q []byte
		switch f.Type {
		case 'Q':
			q = queryText('Q', f.Body)
		case 'P':
			name, text, ok := statementSQL(f.Body)
			if !ok {
				break
			}
			if has := len(text) > 0 && mayHaveEffects(text); has || fx[name] != "" {
				own()
				if fx == nil {
					fx = make(map[string]string)
				}
				delete(fx, name)
				if has && len(sqlscan.Effects(string(text))) > 0 {
					fx[name] = string(text)
				}
			}
		case 'C':
			if len(f.Body) > 1 && f.Body[0] == 'S' && len(fx) > 0 {
				if name, _, _ := bytes.Cut(f.Body[1:], []byte{0}); fx[string(name)] != "" {
					own()
					delete(fx, string(name))
				}
			}
		case 'B':
			if len(fx) > 0 {
				if name, ok := boundStatement(f.Body); ok && fx[name] != "" {
					q = []byte(fx[name])
				}
			}
		}
		if len(q) > 0 && mayHaveEffects(q) {
			fn(f, q, sqlscan.Effects(string(q)))
		} else {
			fn(f, nil, nil)
		}
	}
	if commit {
		s.stmtFx = fx
	}
	return touched
}

// lookAhead reads the batch in s.frames once, before it is sent: quiet
// says it neither has effects nor changes stmtFx, so that notePinsLocked,
// which runs under s.mu, only counts its requests (the usual batch, and
// one with a long text, is read once and outside the lock).
func (s *Session) lookAhead() {
	effects := false
	touched := s.effectsOf(s.frames, false, func(_ wire.Frame, _ []byte, e []sqlscan.Effect) {
		effects = effects || len(e) > 0
	})
	s.quiet = !effects && !touched
}

// noteStatements records the Parses and Closes of a batch answered
// without a server (a deferred Parse still makes the client's statement).
func (s *Session) noteStatements(frames []wire.Frame) {
	s.effectsOf(frames, true, func(wire.Frame, []byte, []sqlscan.Effect) {})
}

// tooManyEffectStatements reports whether the client keeps more
// statements with effects than pgvalve follows.
func (s *Session) tooManyEffectStatements() bool { return len(s.stmtFx) > maxEffectStatements }

// applyPins records in p what effects, made by q, leave on the server
// that cannot follow the client.
func (s *Session) applyPins(p *pins, q []byte, effects []sqlscan.Effect) {
	// The statement tracker carries a SQL PREPARE, sent as a simple query
	// or through the extended protocol, like a Parsed statement; without
	// the tracker it stays on the server and pins.
	p.apply(effects, !s.tr.FollowsSQLPrepare())
	if !replayable(q, effects) {
		p.unknownSet = true
	}
	if s.pinAll && len(effects) > 0 {
		p.all = true
	}
}
