package stmt

import (
	"encoding/binary"
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// NewSQLStatement makes a client's statement from its SQL PREPARE: rest is
// what follows the name, "[(types)] AS statement". Its server name comes
// from rest, apart from every Parse-made name (whose content always ends
// in parameter types of 2+4n bytes); a PREPARE of the same text by any
// client shares it. Without declared types it is the same statement as a
// Parse of the text after AS, which a Bind of it uses on a server that
// lacks it.
func NewSQLStatement(rest string) *Statement {
	st := &Statement{sql: rest, parsed: true, typed: true}
	st.Server = ServerName(rest, []byte("PREPARE"))
	if body, typed, ok := splitPrepare(rest); ok {
		st.Query, st.typed = body, typed
		st.ParamTypes = []byte{0, 0}
	}
	return st
}

// splitPrepare reads "[(types)] AS statement": the statement, and whether
// types are declared. ok is false where it is not that simple (a comment
// before AS): the statement is then taken as typed.
func splitPrepare(rest string) (body string, typed, ok bool) {
	s := strings.TrimLeft(rest, " \t\r\n\f")
	if strings.HasPrefix(s, "(") {
		end := closingParen(s)
		if end < 0 {
			return "", false, false
		}
		s, typed = strings.TrimLeft(s[end+1:], " \t\r\n\f"), true
	}
	if len(s) < 3 || !strings.EqualFold(s[:2], "as") || !isBlank(s[2]) {
		return "", false, false
	}
	return strings.TrimLeft(s[2:], " \t\r\n\f"), typed, true
}

// closingParen returns the index of the parenthesis closing s[0], past
// quoted identifiers and nested parentheses (numeric(10, 2)).
func closingParen(s string) int {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			if depth--; depth == 0 {
				return i
			}
		case c == '\'' || c == '-' || c == '/' || c == '$':
			return -1 // a literal or a comment: not read here
		}
	}
	return -1
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }

// sqlPrepare returns the SQL that prepares st on a server under its server
// name, ok false where SQL cannot: a Parse-made statement with declared
// parameter types (SQL names types, a Parse gives OIDs), or one PREPARE
// refuses (not a SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, TABLE or
// WITH), or one whose running drops statements.
func (s *Statement) sqlPrepare() (string, bool) {
	if s.sql != "" {
		return "PREPARE " + s.Server + s.sql, true
	}
	if s.act != (action{}) || declaresTypes(s.ParamTypes) ||
		!sqlscan.FirstWordIs(s.Query, "select", "insert", "update", "delete", "merge", "values", "table", "with") {
		return "", false
	}
	return "PREPARE " + s.Server + " AS " + s.Query, true
}

// declaresTypes reports whether a Parse's parameter types name any type
// (an OID of 0 leaves it to PostgreSQL, as PREPARE without types does).
func declaresTypes(p []byte) bool {
	for i := 2; i+4 <= len(p); i += 4 {
		if binary.BigEndian.Uint32(p[i:]) != 0 {
			return true
		}
	}
	return false
}
