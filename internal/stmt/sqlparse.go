package stmt

import (
	"encoding/binary"
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// SQL-level PREPARE and EXECUTE sent through the extended protocol (a
// Parse whose text is the statement, then Bind and Execute) name the
// client's statements as the same statements sent as a simple query do
// (sqlnames.go), so the text the server parses is rewritten:
//
//   - EXECUTE name (also inside EXPLAIN and CREATE TABLE … AS) runs the
//     server copy of the client's statement name as it is when the Parse
//     comes; that copy is prepared before the Parse, and before every
//     Bind of it, on a server that lacks it. A name the client does not
//     have becomes pgv_refused, so the Execute fails with 26000 naming
//     the client's name, as PostgreSQL's does. PostgreSQL looks the name
//     up when it executes: a Bind after the client deallocated or
//     prepared the name again since the Parse binds the text parsed again
//     (see rebound);
//   - PREPARE name … runs as PREPARE of its server copy; its Execute
//     makes name the client's, or fails with 42P05 (42939 for pgv_ names)
//     as PostgreSQL's would, and closes any copy the server holds first;
//   - DEALLOCATE needs no rewrite: see Statement.sent.

// parsedStatement makes the client's statement of a Parse, with its text
// rewritten where it names one of the client's statements. It returns
// ErrWait when that name's existence awaits an earlier Sync group.
func (t *Tracker) parsedStatement(p Parse) (*Statement, error) {
	if st, ok := t.recentStatement(p); ok {
		return st, nil
	}
	st := NewStatement(p)
	verb, s, at, ok := sqlTarget(p.Query)
	if !ok {
		if st.act == (action{}) {
			t.notePlain(st)
		}
		return st, nil
	}
	w := s.Words[at]
	name, target := w.Name(), ""
	switch verb {
	case "prepare":
		sq := NewSQLStatement(p.Query[w.End:s.End])
		st.act = action{prep: name, prepSt: sq}
		target = sq.Server
	case "execute":
		if t.regTentative(name) {
			return nil, ErrWait
		}
		st.ref, target = name, refusedName
		if dep, ok := t.reg.Get(name); ok && !strings.HasPrefix(name, serverPrefix) {
			st.uses, target = dep, dep.Server
		}
	default:
		return st, nil // DEALLOCATE: see Statement.sent
	}
	st.rewritten = p.Query[:w.Pos] + target + p.Query[w.End:]
	st.Server = ServerName(st.sent(), p.ParamTypes)
	return st, nil
}

// sqlTarget reads a Parse's text for one statement naming a prepared
// statement: PREPARE, EXECUTE or DEALLOCATE (see preparedName).
func sqlTarget(query string) (verb string, s sqlscan.Statement, at int, ok bool) {
	if !textNamesPrepared(query) {
		return "", s, 0, false
	}
	sts := sqlscan.Statements(query, 8)
	if len(sts) != 1 {
		return "", s, 0, false // PostgreSQL refuses more than one
	}
	s = explainOptions(query, sts[0])
	verb, at, ok = preparedName(s.Words)
	return verb, s, at, ok
}

// namesStatement reports whether a Parse's text is a PREPARE or EXECUTE
// that the tracker rewrites: it cannot be deferred, since what it names
// is read when it is parsed.
func namesStatement(query string) bool {
	verb, _, _, ok := sqlTarget(query)
	return ok && verb != "deallocate"
}

// copyFor makes sure the server holds, before what comes next in the
// batch, a copy of dep, the statement that st EXECUTEs: prepared with a
// hidden Parse where it lacks one, or its own PREPARE where it declares
// types by name. ok is false where neither can make it (a statement that
// itself names statements, or drops them).
func (t *Tracker) copyFor(st *Statement) bool {
	if st == nil || st.uses == nil {
		return true
	}
	dep := st.uses
	t.keep[dep.Server] = true
	if t.usableCopy(dep) {
		return true
	}
	if dep.uses != nil || dep.act != (action{}) {
		return false
	}
	if sql, ok := dep.sqlPrepare(); ok && dep.typed {
		t.prepareBySQL(dep.Server, sql)
		return true
	}
	if dep.typed {
		return false
	}
	t.prepare(dep, entry{hide: true})
	return true
}

// sqlPortal is the portal pgvalve runs its own PREPARE in.
const sqlPortal = serverPrefix + "prepare"

// prepareBySQL makes the server copy name with its SQL PREPARE, run with
// hidden Parse, Bind and Execute (a simple query would end the extended
// protocol's implicit transaction). It uses the unnamed statement, which
// the client's next use of its own makes again (see ensureUnnamed), and
// a portal of pgvalve's, closed after it.
func (t *Tracker) prepareBySQL(name, sql string) {
	t.keep[name] = true
	if t.srv.Has(name) || t.srv.unsure || t.tentative(name) {
		t.closeHidden(name)
	}
	for _, victim := range t.srv.victims(t.keep) {
		t.closeHidden(victim)
	}
	t.in.Buf = AppendParse(t.in.Buf, "", sql, []byte{0, 0})
	t.push(entry{typ: 'P', hide: true, ok: []effect{t.serverUnnamed(noopName)}})
	t.in.Buf = appendBindPortal(t.in.Buf, sqlPortal)
	t.push(entry{typ: 'B', hide: true})
	t.in.Buf = appendExecutePortal(t.in.Buf, sqlPortal)
	t.push(entry{typ: 'E', hide: true, ok: []effect{t.prepared(name)}})
	t.in.Buf = AppendTarget(t.in.Buf, 'C', 'P', sqlPortal)
	t.push(entry{typ: 'C', hide: true})
}

// appendBindPortal appends a Bind of the unnamed statement, without
// parameters, to portal.
func appendBindPortal(dst []byte, portal string) []byte {
	body := append([]byte(portal), 0, 0)  // portal, unnamed statement
	body = append(body, 0, 0, 0, 0, 0, 0) // no formats, no params, no result formats
	dst = append(dst, 'B')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}

// appendExecutePortal appends an Execute of portal, without a row limit.
func appendExecutePortal(dst []byte, portal string) []byte {
	dst = append(dst, 'E')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(portal)+1+4))
	dst = append(dst, portal...)
	return append(dst, 0, 0, 0, 0, 0)
}

// refMoved reports whether the client's statement that st EXECUTEs is no
// longer the one it named when parsed (deallocated, or prepared again).
func (t *Tracker) refMoved(st *Statement) bool {
	if st == nil || st.ref == "" {
		return false
	}
	cur, _ := t.reg.Get(st.ref)
	if strings.HasPrefix(st.ref, serverPrefix) {
		cur = nil
	}
	return cur != st.uses
}

// refusals of a Parse-made EXECUTE pgvalve cannot run as PostgreSQL would.
func noCopyMessage(ref string) string {
	return `pgvalve: prepared statement "` + ref + `" is not prepared on the server this runs on, and pgvalve cannot prepare it there ` +
		`(it names or drops prepared statements itself)`
}

// rebound is st parsed again now, for one Bind: PostgreSQL reads the name
// an EXECUTE names when it runs, so a Bind after the client deallocated
// or prepared that name again runs what the name is now (a Describe of
// the statement still answers as when it was parsed, as PostgreSQL's
// does). The caller checked that the name is not tentative.
func (t *Tracker) rebound(st *Statement) *Statement {
	re, err := t.parsedStatement(Parse{Query: st.Query, ParamTypes: st.ParamTypes})
	if err != nil {
		return st
	}
	return re
}

// bindRenames are the server names a Bind of st makes its portal use for
// the client's: its Execute's errors name them as the client does.
func bindRenames(st *Statement) [][2]string {
	if st == nil || st.ref == "" {
		return nil
	}
	if st.uses == nil {
		return [][2]string{{refusedName, st.ref}}
	}
	return [][2]string{{st.uses.Server, st.ref}}
}

// executePrepare books the Execute of a portal that runs PREPARE name:
// PostgreSQL's error where the client has the name (or it is pgvalve's),
// else the client's name made once it ran, after any copy the server
// holds is closed (PREPARE of it would fail there).
func (t *Tracker) executePrepare(e *entry, portal string, act action, off, n int) error {
	name, sq := act.prep, act.prepSt
	if t.regTentative(name) {
		return ErrWait
	}
	from := len(t.in.Buf)
	code, msg := "", ""
	if _, known := t.reg.Get(name); known {
		code, msg = "42P05", `prepared statement "`+name+`" already exists`
	}
	if strings.HasPrefix(name, serverPrefix) {
		code, msg = "42939", `prepared statement names starting with "`+serverPrefix+`" are reserved by pgvalve`
	}
	if code != "" {
		t.in.Buf = appendExecuteNoop(t.in.Buf)
		t.in.Replace(off, n, from)
		e.more().errAs = &errRewrite{"34000", code, msg, noopName}
		return nil
	}
	t.keep[sq.Server] = true
	if t.srv.Has(sq.Server) || t.srv.unsure || t.tentative(sq.Server) {
		t.closeHidden(sq.Server)
		t.in.Replace(off, 0, from)
	}
	e.ok = []effect{t.regSet(name, sq), t.prepared(sq.Server), t.portalSet(portal, action{})}
	return nil
}

// textNamesPrepared is namesPrepared for a Parse's text, without copying
// it: every Parse passes here.
func textNamesPrepared(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] | 0x20 {
		case 'p', 'e', 'd':
			rest := q[i:]
			if len(rest) >= 7 && (strings.EqualFold(rest[:7], "prepare") || strings.EqualFold(rest[:7], "execute")) ||
				len(rest) >= 10 && strings.EqualFold(rest[:10], "deallocate") {
				return true
			}
		}
	}
	return false
}
