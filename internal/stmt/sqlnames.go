package stmt

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// SQL-level PREPARE, EXECUTE and DEALLOCATE share their namespace with the
// protocol's statements. A simple query that names one of the client's
// protocol statements, or one of pgvalve's own server names, is rewritten
// so each of its statements gets PostgreSQL's answer where it runs:
//
//   - DEALLOCATE [PREPARE] name drops the server's copy (or, where the
//     server has none, runs a DO block that does nothing, answered as
//     DEALLOCATE), and the client's name once PostgreSQL says it ran;
//   - EXECUTE name runs the server's copy when the server holds one of its
//     shape; otherwise it fails with 0A000 (a simple query cannot wait for
//     a copy to be prepared: an error there would skip the query itself);
//   - PREPARE name of a name the client has fails with 42P05;
//   - pgvalve's pgv_ names are the client's no more than any name it never
//     made: 26000, and 42939 for PREPARE.
//
// A statement that must fail is replaced by one that fails where it stands
// (DEALLOCATE of a name nobody has), and the error is rewritten. Names the
// client did not make with Parse go to the server unchanged.

// refusedName is never prepared: DEALLOCATE of it fails with 26000.
const refusedName = serverPrefix + "refused"

// sqlEdit replaces text[start:end] of a query.
type sqlEdit struct {
	start, end int
	with       string
}

// queryDealloc is a DEALLOCATE of a client's statement inside a simple
// query, the index-th statement: its effects are made when its
// CommandComplete comes (DEALLOCATE does not roll back).
type queryDealloc struct {
	index        int
	name, server string
	held         bool // the server held a copy, which it drops
}

// querySQLNames rewrites the SQL-level statement names of a simple query
// (body, NUL-terminated) into e and t.in. It returns ErrWait when a name
// depends on an earlier, unanswered Sync group, or a shape must be known.
func (t *Tracker) querySQLNames(body []byte, off, n int, e *entry) error {
	text := string(body[:len(body)-1])
	from := len(t.in.Buf)
	var edits []sqlEdit
	for i, st := range sqlscan.Statements(text, 3) {
		verb, at, ok := preparedName(st.Words)
		if !ok {
			continue
		}
		w := st.Words[at]
		edit, err := t.sqlName(verb, w.Name(), e, i)
		if err != nil {
			return err
		}
		switch edit.with {
		case "":
		case refusedName:
			edits = append(edits, sqlEdit{st.Start, st.End, "DEALLOCATE " + refusedName})
		case doNothing:
			edits = append(edits, sqlEdit{st.Start, st.End, doNothing})
		default:
			edits = append(edits, sqlEdit{w.Pos, w.End, edit.with})
		}
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

// sqlName decides what becomes of one named statement of a query, the
// index-th: its name replaced (with), the statement replaced by a failing
// one (with == refusedName, its error in e), or left alone ("").
func (t *Tracker) sqlName(verb, name string, e *entry, index int) (sqlEdit, error) {
	if strings.HasPrefix(name, serverPrefix) {
		if verb == "prepare" {
			t.refuse(e, "42939", `prepared statement names starting with "`+serverPrefix+`" are reserved by pgvalve`)
		} else {
			t.refuse(e, "26000", `prepared statement "`+name+`" does not exist`)
		}
		return sqlEdit{with: refusedName}, nil
	}
	if t.regTentative(name) {
		return sqlEdit{}, ErrWait
	}
	st, known := t.reg.Get(name)
	if !known {
		return sqlEdit{}, nil
	}
	switch verb {
	case "prepare":
		t.refuse(e, "42P05", `prepared statement "`+name+`" already exists`)
		return sqlEdit{with: refusedName}, nil
	case "execute":
		if t.status == 'E' && !t.ran {
			return sqlEdit{with: st.Server}, nil // refused before it is looked up
		}
		if !t.srv.Ready(st.Server) || t.tentative(st.Server) || st.shape == 0 || t.srv.shape(st.Server) != st.shape {
			t.refuse(e, "0A000", `pgvalve: prepared statement "`+name+
				`", made with Parse, is not prepared on the server this query runs on; run it with Bind and Execute`)
			return sqlEdit{with: refusedName}, nil
		}
		return sqlEdit{with: st.Server}, nil
	}
	// Its effects wait for its answer; a later Sync group naming it waits
	// too (regTentative).
	t.regTouch(name)
	t.touch(st.Server)
	held := t.srv.Has(st.Server) && !t.tentative(st.Server)
	x := e.more()
	x.deallocs = append(x.deallocs, queryDealloc{index, name, st.Server, held})
	if !held {
		return sqlEdit{with: doNothing}, nil
	}
	return sqlEdit{with: st.Server}, nil
}

// doNothing succeeds with tag DO and changes nothing: it stands for a
// DEALLOCATE of a statement the server does not hold, and its tag becomes
// DEALLOCATE.
const doNothing = "DO $pgv$BEGIN END$pgv$"

// refuse makes the query's replaced statement fail with code and msg: the
// first such statement is the one that fails, since a query stops at its
// first error.
func (t *Tracker) refuse(e *entry, code, msg string) {
	if x := e.more(); x.errAs == nil {
		x.errAs = &errRewrite{when: "26000", code: code, msg: msg, about: refusedName}
	}
}

// preparedName reads a statement's leading words for the prepared
// statement it names: PREPARE name, EXECUTE name, DEALLOCATE [PREPARE]
// name (not ALL, not PREPARE TRANSACTION); at is the name's index in w.
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
	}
	return "", 0, false
}

// namesPrepared is a cheap first look: the words PREPARE, EXECUTE or
// DEALLOCATE appear somewhere in the text, in any case.
func namesPrepared(b []byte) bool {
	return containsFold(b, "prepare") || containsFold(b, "execute") || containsFold(b, "deallocate")
}
