package stmt

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// SQL-level PREPARE, EXECUTE and DEALLOCATE share their namespace with the
// protocol's statements, and follow the client as they do. A simple query
// naming a statement is rewritten so each of its statements gets
// PostgreSQL's answer where it runs:
//
//   - PREPARE name [(types)] AS statement registers name as the client's
//     and runs as PREPARE pgv_… (named by content, see SQLStatement), or
//     as nothing (answered PREPARE) when an earlier statement of the same
//     query prepared that content already; 42P05 for a name the client has;
//   - EXECUTE name (also inside EXPLAIN and CREATE TABLE … AS) runs the
//     server's copy, prepared first by a PREPARE put before the statement
//     when the server lacks it (its CommandComplete is hidden); a Parse-made
//     statement PREPARE cannot make again (declared parameter types, not a
//     SELECT/INSERT/UPDATE/DELETE/MERGE) fails with 0A000 there;
//   - DEALLOCATE [PREPARE] name drops the server's copy (or, where the
//     server has none, runs a DO block that does nothing, answered as
//     DEALLOCATE), and the client's name once PostgreSQL says it ran;
//   - a name the client does not have, and pgvalve's pgv_ names, get 26000
//     for EXECUTE and DEALLOCATE, and 42939 for PREPARE of a pgv_ name.
//
// PostgreSQL's prepared statements are not transactional (a ROLLBACK keeps
// a PREPARE and a DEALLOCATE), so each statement's effects are made when
// its CommandComplete comes, for good. A statement that must fail is
// replaced by one that fails where it stands (DEALLOCATE of a name nobody
// has), and the error is rewritten.

// refusedName is never prepared: DEALLOCATE of it fails with 26000.
const refusedName = serverPrefix + "refused"

// sqlEdit replaces text[start:end] of a query.
type sqlEdit struct {
	start, end int
	with       string
}

// itemKind is what one statement of a simple query does to the client's
// statements when it runs.
type itemKind uint8

const (
	itemDealloc  itemKind = iota // DEALLOCATE of a client's name
	itemPrepare                  // PREPARE of a client's name
	itemInjected                 // pgvalve's PREPARE of a copy the server lacked
)

// queryItem is a statement of a simple query, the index-th (counted in the
// text the server gets), whose effects are made when its CommandComplete
// comes.
type queryItem struct {
	index        int
	kind         itemKind
	name, server string
	st           *Statement
	// held: the server holds the copy (DEALLOCATE drops it), or the
	// statement prepares it there (PREPARE).
	held bool
}

// queryNames is what the statements of one query before the one being
// rewritten did to names, though their effects wait for their answers.
type queryNames struct {
	mine   map[string]*Statement // client's names prepared (or nil: deallocated)
	server map[string]bool       // server names held (or false: dropped) by then
	added  int                   // statements pgvalve put into the query so far
}

// lookup returns the client's statement as the query's current statement
// sees it.
func (q *queryNames) lookup(reg *Registry, name string) (*Statement, bool) {
	if st, ok := q.mine[name]; ok {
		return st, st != nil
	}
	return reg.Get(name)
}

// querySQLNames rewrites the SQL-level statement names of a simple query
// (body, NUL-terminated) into e and t.in. It returns ErrWait, having
// booked nothing, when a name depends on an earlier, unanswered Sync group.
func (t *Tracker) querySQLNames(body []byte, off, n int, e *entry) error {
	text := string(body[:len(body)-1])
	sts := sqlscan.Statements(text, 8)
	for i := range sts {
		sts[i] = explainOptions(text, sts[i])
	}
	for _, st := range sts {
		if _, at, ok := preparedName(st.Words); ok && t.regTentative(st.Words[at].Name()) {
			return ErrWait
		}
	}
	from := len(t.in.Buf)
	q := queryNames{mine: map[string]*Statement{}, server: map[string]bool{}}
	var edits []sqlEdit
	for i, st := range sts {
		verb, at, ok := preparedName(st.Words)
		if !ok {
			continue
		}
		edits = append(edits, t.sqlName(&q, verb, text, st, at, e, i+q.added)...)
	}
	if len(edits) == 0 {
		return nil
	}
	var b strings.Builder
	at := 0
	for _, ed := range edits {
		b.WriteString(text[at:ed.start])
		b.WriteString(ed.with)
		at = ed.end
	}
	b.WriteString(text[at:])
	t.in.Buf = appendQuery(t.in.Buf, b.String())
	t.in.Replace(off, n, from)
	return nil
}

// sqlName decides what becomes of one statement of a query, the index-th,
// naming a prepared statement: the edits to its text (none: it goes as it
// is); a statement refused gets its error in e.
func (t *Tracker) sqlName(q *queryNames, verb, text string, s sqlscan.Statement, at int, e *entry, index int) []sqlEdit {
	w := s.Words[at]
	name := w.Name()
	refused := []sqlEdit{{s.Start, s.End, "DEALLOCATE " + refusedName}}
	st, known := q.lookup(t.reg, name)
	switch {
	case strings.HasPrefix(name, serverPrefix) && verb == "prepare":
		t.refuse(e, "42939", `prepared statement names starting with "`+serverPrefix+`" are reserved by pgvalve`)
		return refused
	case strings.HasPrefix(name, serverPrefix), !known && verb != "prepare":
		t.refuse(e, "26000", `prepared statement "`+name+`" does not exist`)
		return refused
	case known && verb == "prepare":
		t.refuse(e, "42P05", `prepared statement "`+name+`" already exists`)
		return refused
	}
	// The handlers end their edits with an empty one where the name is
	// to be replaced by its server name.
	rename := sqlEdit{w.Pos, w.End, ""}
	var edits []sqlEdit
	switch verb {
	case "prepare":
		edits = t.sqlPrepare(q, NewSQLStatement(text[w.End:s.End]), name, s, e, index)
	case "execute":
		edits = t.sqlExecute(q, st, name, s, e, index)
	default:
		edits = t.sqlDeallocate(q, st, name, s, e, index)
	}
	if len(edits) > 0 && edits[len(edits)-1].with == "" {
		if verb == "prepare" {
			st = q.mine[name]
		}
		rename.with = st.Server
		edits[len(edits)-1] = rename
		e.more().renamed(rename.with, name)
	}
	return edits
}

// aborted reports whether the server refuses every statement but those
// ending the transaction before looking up any name (25P02).
func (t *Tracker) aborted() bool { return t.status == 'E' && !t.ran }

// sqlPrepare handles PREPARE of a name the client does not have.
func (t *Tracker) sqlPrepare(q *queryNames, st *Statement, name string, s sqlscan.Statement, e *entry, index int) []sqlEdit {
	q.mine[name] = st
	if t.aborted() {
		return []sqlEdit{{}} // 25P02: nothing is prepared
	}
	t.regTouch(name)
	t.touch(st.Server)
	x := e.more()
	if q.server[st.Server] {
		// Prepared by an earlier statement of this query: PREPARE again
		// would fail on the server (42P05) where the client's succeeds.
		x.items = append(x.items, queryItem{index: index, kind: itemPrepare, name: name, st: st})
		return []sqlEdit{{s.Start, s.End, doNothing}}
	}
	t.freshCopy(q, st.Server)
	x.items = append(x.items, queryItem{index: index, kind: itemPrepare, name: name, server: st.Server, st: st, held: true})
	return []sqlEdit{{}}
}

// freshCopy makes sure the server holds no copy of name before a PREPARE
// of it in the query: another copy (of an older shape, or one the books
// cannot vouch for) is closed first.
func (t *Tracker) freshCopy(q *queryNames, name string) {
	if _, seen := q.server[name]; !seen && (t.srv.Has(name) || t.srv.unsure || t.tentative(name)) {
		t.closeHidden(name)
	}
	q.server[name] = true
}

// sqlExecute handles EXECUTE of one of the client's statements.
func (t *Tracker) sqlExecute(q *queryNames, st *Statement, name string, s sqlscan.Statement, e *entry, index int) []sqlEdit {
	if t.aborted() {
		return []sqlEdit{{}} // refused before it is looked up
	}
	held, seen := q.server[st.Server]
	if seen && held || !seen && t.usableCopy(st) {
		q.server[st.Server] = true
		return []sqlEdit{{}}
	}
	prep, ok := st.sqlPrepare()
	if !ok {
		t.refuse(e, "0A000", `pgvalve: prepared statement "`+name+
			`", made with Parse, is not prepared on the server this query runs on; run it with Bind and Execute`)
		return []sqlEdit{{s.Start, s.End, "DEALLOCATE " + refusedName}}
	}
	t.touch(st.Server)
	t.freshCopy(q, st.Server)
	e.more().items = append(e.x.items, queryItem{index: index, kind: itemInjected, server: st.Server})
	q.added++
	return []sqlEdit{{s.Start, s.Start, prep + "\n;"}, {}}
}

// usableCopy reports whether the server's copy of st can run it now: for
// a Parse-made statement, only a copy of its shape.
func (t *Tracker) usableCopy(st *Statement) bool {
	if st.uses != nil || !t.srv.Ready(st.Server) || t.tentative(st.Server) {
		return false
	}
	return st.sql != "" || st.shape != 0 && t.srv.shape(st.Server) == st.shape
}

// sqlDeallocate handles DEALLOCATE of one of the client's statements. Its
// effects wait for its answer; a later Sync group naming it waits too
// (regTentative).
func (t *Tracker) sqlDeallocate(q *queryNames, st *Statement, name string, s sqlscan.Statement, e *entry, index int) []sqlEdit {
	q.mine[name] = nil
	t.regTouch(name)
	t.touch(st.Server)
	held, seen := q.server[st.Server]
	if !seen {
		held = t.srv.Has(st.Server) && !t.tentative(st.Server)
	}
	if held {
		q.server[st.Server] = false
	}
	x := e.more()
	x.items = append(x.items, queryItem{index: index, kind: itemDealloc, name: name, server: st.Server, held: held})
	if !held {
		return []sqlEdit{{s.Start, s.End, doNothing}}
	}
	return []sqlEdit{{}}
}

// doNothing succeeds with tag DO and changes nothing: it stands for a
// DEALLOCATE of a statement the server does not hold, or a PREPARE of one
// the query prepared already; its tag becomes theirs.
const doNothing = "DO $pgv$BEGIN END$pgv$"

// refuse makes the query's replaced statement fail with code and msg: the
// first such statement is the one that fails, since a query stops at its
// first error.
func (t *Tracker) refuse(e *entry, code, msg string) {
	if x := e.more(); x.errAs == nil {
		x.errAs = &errRewrite{when: "26000", code: code, msg: msg, about: refusedName}
	}
}

// renamed records that the query names the client's statement name as
// server, so the server's errors name it as the client knows it.
func (x *extra) renamed(server, name string) {
	for _, r := range x.renames {
		if r[0] == server {
			return
		}
	}
	x.renames = append(x.renames, [2]string{server, name})
}

// preparedName reads a statement's leading words for the prepared
// statement it names: PREPARE name, EXECUTE name, DEALLOCATE [PREPARE]
// name (not ALL, not PREPARE TRANSACTION), EXPLAIN [ANALYZE] [VERBOSE]
// EXECUTE name, CREATE … AS EXECUTE name; at is the name's index in w.
// PREPARE is a name too: DEALLOCATE prepare drops the statement "prepare".
func preparedName(w []sqlscan.Word) (verb string, at int, ok bool) {
	if len(w) < 2 {
		return "", 0, false
	}
	switch {
	case w[0].Is("prepare") && !w[1].Is("transaction"):
		return "prepare", 1, true
	case w[0].Is("execute"):
		return "execute", 1, true
	case w[0].Is("deallocate"):
		at = 1
		if w[1].Is("prepare") && len(w) > 2 {
			at = 2
		}
		if w[at].Is("all") {
			return "", 0, false
		}
		return "deallocate", at, true
	case w[0].Is("explain"):
		k := 1
		for k < len(w) && (w[k].Is("analyze") || w[k].Is("analyse") || w[k].Is("verbose")) {
			k++
		}
		if k+1 < len(w) && w[k].Is("execute") {
			return "execute", k + 1, true
		}
	case w[0].Is("create"):
		for k := 2; k+1 < len(w); k++ {
			if w[k].Is("execute") && w[k-1].Is("as") {
				return "execute", k + 1, true
			}
		}
	}
	return "", 0, false
}

// explainOptions reads EXPLAIN (options) EXECUTE name, whose leading
// words stop at the parenthesis: s with the words after it, placed in text.
func explainOptions(text string, s sqlscan.Statement) sqlscan.Statement {
	if len(s.Words) != 1 || !s.Words[0].Is("explain") {
		return s
	}
	i := s.Words[0].End
	for i < s.End && isBlank(text[i]) {
		i++
	}
	if i >= s.End || text[i] != '(' {
		return s
	}
	end := closingParen(text[i:s.End])
	if end < 0 {
		return s
	}
	from := i + end + 1
	sub := sqlscan.Statements(text[from:s.End], 2)
	if len(sub) != 1 || len(sub[0].Words) < 2 || !sub[0].Words[0].Is("execute") {
		return s
	}
	words := []sqlscan.Word{s.Words[0]}
	for _, w := range sub[0].Words[:2] {
		w.Pos, w.End = w.Pos+from, w.End+from
		words = append(words, w)
	}
	return sqlscan.Statement{Words: words, Start: s.Start, End: s.End}
}

// namesPrepared is a cheap first look: the words PREPARE, EXECUTE or
// DEALLOCATE appear somewhere in the text, in any case.
func namesPrepared(b []byte) bool {
	return containsFold(b, "prepare") || containsFold(b, "execute") || containsFold(b, "deallocate")
}
