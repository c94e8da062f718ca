package sqlscan

import (
	"slices"
	"strings"
)

// Kind is a kind of session state a statement leaves on its server: what
// transaction pooling must carry to the client's next server, keep the
// client on its server for, or clean before the server's next client.
type Kind uint8

const (
	Listen            Kind = iota + 1 // LISTEN channel
	Unlisten                          // UNLISTEN channel, or * (Name "*")
	AdvisoryLock                      // pg_[try_]advisory_lock[_shared](args), session level
	AdvisoryUnlock                    // pg_advisory_unlock[_shared](args)
	AdvisoryUnlockAll                 // pg_advisory_unlock_all()
	TempObject                        // CREATE TEMP TABLE / VIEW / SEQUENCE ...
	DiscardTemp                       // DISCARD TEMP
	DiscardAll                        // DISCARD ALL
	Set                               // SET name = value (not SET LOCAL), set_config(name, value, false)
	Reset                             // RESET name, or RESET ALL (Name "")
	Prepare                           // PREPARE name
	Deallocate                        // DEALLOCATE name, or ALL (Name "")
	HoldCursor                        // DECLARE name ... WITH HOLD
	CloseCursor                       // CLOSE name, or ALL (Name "")
	Load                              // LOAD 'library'
)

var kindNames = [...]string{"", "listen", "unlisten", "advisory_lock", "advisory_unlock", "advisory_unlock_all",
	"temp_object", "discard_temp", "discard_all", "set", "reset", "prepare", "deallocate", "hold_cursor", "close_cursor", "load"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Effect is one session-state change a query string makes. Name is the
// channel, setting, statement or cursor name as PostgreSQL reads it ("" or
// "*" for all, as each Kind says); for advisory locks it is the argument
// text, blanks removed, so that a lock and its unlock compare equal. Value
// is a SET's value as written. Known is false for a set_config whose
// name or scope is not a literal: it may have changed any setting.
type Effect struct {
	Kind        Kind
	Name, Value string
	Known       bool
	Pos         int // where in the text it is
}

// Effects finds the session-state changes in q, a Query string (any
// number of statements) or one prepared statement's text, in text order:
// by each statement's leading words, and by the advisory-lock and
// set_config calls anywhere outside quotes and comments. A call inside a
// dollar-quoted body (a DO block, a function) is not seen.
func Effects(q string) []Effect {
	var out []Effect
	for _, st := range Statements(q, 10) {
		if e, ok := statementEffect(q, st); ok {
			out = append(out, e)
		}
	}
	out = append(out, callEffects(q)...)
	slices.SortStableFunc(out, func(a, b Effect) int { return a.Pos - b.Pos })
	return out
}

// statementEffect reads a statement's leading words.
func statementEffect(q string, st Statement) (Effect, bool) {
	w := st.Words
	is := func(i int, kws ...string) bool {
		return i < len(w) && slices.ContainsFunc(kws, w[i].Is)
	}
	name := func(i int) string {
		if i < len(w) {
			return w[i].Name()
		}
		return ""
	}
	e := Effect{Pos: st.Start, Known: true}
	switch {
	case is(0, "listen") && len(w) == 2:
		e.Kind, e.Name = Listen, name(1)
	case is(0, "unlisten"):
		e.Kind, e.Name = Unlisten, name(1)
		if e.Name == "" {
			e.Name = "*"
		}
	case is(0, "create"):
		i := 1
		if is(i, "or") && is(i+1, "replace") {
			i += 2
		}
		if is(i, "global", "local") {
			i++
		}
		if !is(i, "temp", "temporary") {
			return e, false
		}
		e.Kind = TempObject
	case is(0, "discard") && is(1, "temp", "temporary"):
		e.Kind = DiscardTemp
	case is(0, "discard") && is(1, "all"):
		e.Kind = DiscardAll
	case is(0, "set"):
		return setEffect(q, st, e)
	case is(0, "reset"):
		e.Kind = Reset
		if !is(1, "all") && len(w) > 1 {
			e.Name, _ = nameAt(q, w[1].Pos, st.End)
		}
	case is(0, "prepare") && len(w) >= 2 && !is(1, "transaction"):
		e.Kind, e.Name = Prepare, name(1)
	case is(0, "deallocate"):
		i := 1
		if is(i, "prepare") {
			i++
		}
		e.Kind = Deallocate
		if !is(i, "all") {
			e.Name = name(i)
		}
	case is(0, "declare") && holdCursor(w):
		e.Kind, e.Name = HoldCursor, name(1)
	case is(0, "close"):
		e.Kind = CloseCursor
		if !is(1, "all") {
			e.Name = name(1)
		}
	case is(0, "load"):
		e.Kind = Load
	default:
		return e, false
	}
	return e, true
}

// holdCursor reports whether a DECLARE's words say WITH HOLD before FOR.
func holdCursor(w []Word) bool {
	for i := 2; i+1 < len(w) && !w[i].Is("for"); i++ {
		if w[i].Is("with") && w[i+1].Is("hold") {
			return true
		}
	}
	return false
}

// setEffect reads SET [SESSION] name {TO | =} value, SET TIME ZONE, SET
// ROLE and SET SESSION AUTHORIZATION; SET LOCAL and SET TRANSACTION last
// only for their transaction and change nothing after it.
func setEffect(q string, st Statement, e Effect) (Effect, bool) {
	w := st.Words[1:]
	if len(w) > 1 && w[0].Is("session") && w[1].Is("characteristics") {
		return e, false
	}
	if len(w) > 0 && w[0].Is("session") && !(len(w) > 1 && w[1].Is("authorization")) {
		w = w[1:]
	}
	if len(w) == 0 || w[0].Is("local") || w[0].Is("transaction") || w[0].Is("constraints") {
		return e, false
	}
	e.Kind = Set
	var rest int // where the value starts
	switch {
	case len(w) > 1 && w[0].Is("time") && w[1].Is("zone"):
		e.Name, rest = "timezone", w[1].End
	case w[0].Is("session") && len(w) > 1 && w[1].Is("authorization"):
		e.Name, rest = "session_authorization", w[1].End
	case w[0].Is("role"):
		e.Name, rest = "role", w[0].End
	default:
		e.Name, rest = nameAt(q, w[0].Pos, st.End)
		// Read from the text: words after a dotted name are not in w.
		after := strings.TrimLeft(q[rest:st.End], " \t\r\n\f")
		skipped := st.End - rest - len(after)
		switch {
		case len(after) > 2 && strings.EqualFold(after[:2], "to") && !identStart(after[2]) && !isDigit(after[2]):
			rest += skipped + 2
		case strings.HasPrefix(after, "="):
			rest += skipped + 1
		}
	}
	e.Value = strings.TrimSpace(q[rest:st.End])
	return e, e.Name != ""
}

// nameAt reads a setting's name at i, up to end: identifiers joined by
// dots (myapp.user_id), quoted parts as written, the rest folded to lower
// case as PostgreSQL does; it returns the name and where it ends.
func nameAt(q string, i, end int) (string, int) {
	var b strings.Builder
	for i < end {
		switch c := q[i]; {
		case c == '"':
			j := skipQuoted(q, i, '"')
			b.WriteString(strings.ReplaceAll(q[i+1:min(j, end)], `""`, `"`))
			i = j + 1
		case identStart(c) || isDigit(c) || c == '$':
			j := i
			for j < end && (identStart(q[j]) || isDigit(q[j]) || q[j] == '$') {
				j++
			}
			b.WriteString(Word{Text: q[i:j]}.Name())
			i = j
		case c == '.':
			b.WriteByte('.')
			i++
		default:
			return b.String(), i
		}
	}
	return b.String(), min(i, end)
}

// callEffects finds the calls of session-level advisory-lock functions
// and of set_config anywhere in q outside quotes and comments, inside
// parentheses too, so "SELECT 1, pg_advisory_lock(7)" and a lock in a
// subquery are seen.
func callEffects(q string) []Effect {
	var out []Effect
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case strings.HasPrefix(q[i:], "--"), strings.HasPrefix(q[i:], "/*"):
			i = skipComment(q, i)
		case c == '\'' || c == '"':
			i = skipLiteral(q, i)
		case c == '$':
			i = skipDollarQuoted(q, i)
		case identStart(c):
			j := i + 1
			for j < len(q) && (identStart(q[j]) || isDigit(q[j]) || q[j] == '$') {
				j++
			}
			k := j
			for k < len(q) && isSpace(q[k]) {
				k++
			}
			if k < len(q) && q[k] == '(' {
				if e, ok := callEffect(strings.ToLower(q[i:j]), q[k+1:min(skipParens(q, k), len(q))]); ok {
					e.Pos = i
					out = append(out, e)
				}
			}
			i = j - 1
		}
	}
	return out
}

// skipLiteral skips a quoted string or identifier at i; an E-string
// takes backslash escapes (a quote after a backslash does not end it).
func skipLiteral(q string, i int) int {
	escapes := q[i] == '\'' && i > 0 && (q[i-1] == 'e' || q[i-1] == 'E') && (i == 1 || !identStart(q[i-2]) && !isDigit(q[i-2]))
	if !escapes {
		return skipQuoted(q, i, q[i])
	}
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			j++
		case '\'':
			if j+1 < len(q) && q[j+1] == '\'' {
				j++
				continue
			}
			return j
		}
	}
	return len(q)
}

// callEffect is what a call of fn with args (their text) does to the
// session.
func callEffect(fn, args string) (Effect, bool) {
	e := Effect{Known: true}
	switch fn {
	case "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared":
		e.Kind, e.Name = AdvisoryLock, squeeze(args)
	case "pg_advisory_unlock", "pg_advisory_unlock_shared":
		e.Kind, e.Name = AdvisoryUnlock, squeeze(args)
	case "pg_advisory_unlock_all":
		e.Kind = AdvisoryUnlockAll
	case "set_config":
		return setConfig(args)
	default:
		return e, false
	}
	return e, true
}

// setConfig reads set_config('name', 'value', false). A call with
// is_local true changes nothing past its transaction; one whose name or
// scope is not a literal is Known false.
func setConfig(args string) (Effect, bool) {
	e := Effect{Kind: Set}
	parts := splitArgs(args)
	if len(parts) != 3 {
		return e, true
	}
	scope := strings.ToLower(strings.TrimSpace(parts[2]))
	if scope == "true" || scope == "'true'" || scope == "'on'" || scope == "'t'" {
		return e, false
	}
	name, ok := literal(parts[0])
	e.Name, e.Known = strings.ToLower(name), ok && (scope == "false" || scope == "'false'" || scope == "'off'" || scope == "'f'")
	e.Value = strings.TrimSpace(parts[1])
	return e, true
}

// splitArgs splits a call's argument text at its top-level commas.
func splitArgs(args string) []string {
	var out []string
	start := 0
	for i := 0; i < len(args); i++ {
		switch c := args[i]; {
		case c == '\'' || c == '"':
			i = skipLiteral(args, i)
		case c == '$':
			i = skipDollarQuoted(args, i)
		case c == '(':
			i = skipParens(args, i)
		case c == ',':
			out = append(out, args[start:i])
			start = i + 1
		}
	}
	return append(out, args[start:])
}

// literal is the value of a plain quoted string, ok false for anything
// else (a parameter, an expression).
func literal(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '\'' || skipQuoted(s, 0, '\'') != len(s)-1 {
		return "", false
	}
	return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), true
}

// squeeze is s without blanks, so "7, 1" and "7,1" name the same lock.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}
