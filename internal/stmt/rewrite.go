package stmt

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// prepare parses st afresh on the server under its server name: closed
// first if the server may hold an older copy, room made by closing the
// least recently used, and a hidden Describe after it to learn its shape.
// The Parse's own entry is e.
func (t *Tracker) prepare(st *Statement, e entry) {
	name := st.Server
	t.keep[name] = true
	if t.srv.Has(name) || t.srv.unsure || t.tentative(name) {
		t.closeHidden(name)
	}
	for _, victim := range t.srv.victims(t.keep) {
		t.closeHidden(victim)
	}
	e.typ = 'P'
	e.more().prepares = name
	e.ok = append(e.ok, t.srvAdd(name))
	t.in.Buf = AppendParse(t.in.Buf, name, st.sent(), st.ParamTypes)
	t.push(e)
	t.in.Buf = AppendTarget(t.in.Buf, 'D', 'S', name)
	t.push(entry{typ: 'D', descS: true, hide: true, x: &extra{describes: name, shapeOf: st}})
	st.parsed = true
}

func (t *Tracker) closeHidden(name string) {
	t.in.Buf = AppendTarget(t.in.Buf, 'C', 'S', name)
	t.push(entry{typ: 'C', hide: true, x: &extra{closes: name}, ok: []effect{t.srvDel(name)}})
}

// preparing reports whether a Parse pgvalve sent of name awaits its
// answer: until its Describe is answered too, the server's copy has no
// known shape.
func (t *Tracker) preparing(name string) bool {
	for i := range t.q {
		if x := t.q[i].x; x != nil && x.prepares == name {
			return true
		}
	}
	return false
}

func (t *Tracker) parse(body []byte, off, n int) error {
	p, err := t.decodeParse(body)
	if err != nil {
		return err
	}
	if t.regTentative(p.Name) {
		return ErrWait
	}
	st, err := t.parsedStatement(p)
	if err != nil {
		return err
	}
	from := len(t.in.Buf)
	if !t.copyFor(st) {
		t.failAs(off, n, 'P', "0A000", noCopyMessage(st.ref))
		return nil
	}
	if p.Name == "" {
		// PostgreSQL drops the unnamed statement before parsing.
		if st.sent() != p.Query || len(t.in.Buf) > from {
			t.in.Buf = AppendParse(t.in.Buf, "", st.sent(), st.ParamTypes)
			t.in.Replace(off, n, from)
		}
		st.parsed = true
		t.push(entry{typ: 'P', ok: []effect{t.clientUnnamed(st), t.serverUnnamed(st.Server)},
			failed: t.dropUnnamed()})
		return nil
	}
	if _, dup := t.reg.Get(p.Name); dup {
		t.parseDuplicate(st, p.Name)
	} else {
		// Always afresh: a copy on the server may predate a change of the
		// tables it reads, which this client's Parse must see.
		t.prepare(st, entry{ok: []effect{t.regSet(p.Name, st)}})
	}
	t.in.Replace(off, n, from)
	return nil
}

// parseDuplicate answers a Parse of a name the client already uses, as
// PostgreSQL does: the query is parsed first (a syntax error or a failed
// transaction wins), then the name is refused with 42P05, and the server
// skips to Sync. The parse goes to pgv_noop, closed at once; a Bind of
// the never-prepared pgv_noop then makes the server fail.
func (t *Tracker) parseDuplicate(st *Statement, name string) {
	t.in.Buf = AppendParse(t.in.Buf, noopName, st.sent(), st.ParamTypes)
	t.push(entry{typ: 'P', hide: true})
	t.in.Buf = AppendTarget(t.in.Buf, 'C', 'S', noopName)
	t.push(entry{typ: 'C', hide: true})
	t.in.Buf = appendBindNoop(t.in.Buf)
	t.push(entry{typ: 'B', x: &extra{errAs: &errRewrite{"26000", "42P05", `prepared statement "` + name + `" already exists`, noopName}}})
}

// failAs makes the message at off fail on the server as PostgreSQL would
// have failed it, with code and msg: a Bind of pgv_noop fails with 26000.
func (t *Tracker) failAs(off, n int, typ byte, code, msg string) {
	from := len(t.in.Buf)
	t.in.Buf = appendBindNoop(t.in.Buf)
	t.in.Replace(off, n, from)
	t.push(entry{typ: typ, x: &extra{errAs: &errRewrite{"26000", code, msg, noopName}}})
}

// usable is what use found of a statement on the server.
type usable int

const (
	useReady   usable = iota // the server's copy is the client's
	useStale                 // PostgreSQL would refuse it: its result changed (0A000)
	useAborted               // it cannot be prepared: the transaction failed
)

// typedSQL is st's sqlPrepare where st was made by PREPARE with parameter
// types; others need no text built on every Bind.
func typedSQL(st *Statement) (string, bool) {
	if !st.typed {
		return "", false
	}
	return st.sqlPrepare()
}

// clientStatement finds the client's statement of a Bind or Describe (typ,
// at off) and makes it usable on the server (see use); from is where what
// use added to the batch begins. st is nil when there is none: the
// message was handled as a name the client did not make.
func (t *Tracker) clientStatement(off, n int, typ byte, name string) (st *Statement, use usable, from int, err error) {
	st, ok := t.reg.Get(name)
	if !ok {
		t.unknown(off, n, typ, name)
		return nil, 0, 0, nil
	}
	if sql, ok := typedSQL(st); ok && !t.aborted() && !(t.srv.Ready(st.Server) && !t.tentative(st.Server)) {
		// Made with PREPARE and parameter types, which a Parse cannot
		// name: its own PREPARE makes it, and its shape is not checked.
		from = len(t.in.Buf)
		t.prepareBySQL(st.Server, sql)
		return st, useReady, from, nil
	}
	if typ == 'B' && st.ref != "" && t.regTentative(st.ref) {
		return nil, 0, 0, ErrWait
	}
	if typ == 'B' && t.refMoved(st) {
		st = t.rebound(st)
	}
	from = len(t.in.Buf)
	if !t.copyFor(st) {
		t.failAs(off, n, typ, "0A000", noCopyMessage(st.ref))
		return nil, 0, 0, nil
	}
	use, err = t.use(st)
	if err != nil {
		t.in.Replace(off, 0, from) // what use sent goes before the wait
		return nil, 0, 0, err
	}
	return st, use, from, nil
}

// unknown handles a Bind or Describe of a name the client did not make with
// Parse: it goes to the server as it is (a SQL-level PREPARE on that server
// may have made it), except pgvalve's own names, which fail as a name
// nobody has would.
func (t *Tracker) unknown(off, n int, typ byte, name string) {
	if strings.HasPrefix(name, serverPrefix) {
		t.failAs(off, n, typ, "26000", `prepared statement "`+name+`" does not exist`)
		return
	}
	t.push(entry{typ: typ, descS: typ == 'D'})
}

// use makes st usable on the server before the message being rewritten:
// a server copy of st's shape, prepared afresh when missing, stale, of
// another shape, or not yet parsed for a deferred statement. It returns
// ErrWait when answers must come first: to earlier Sync groups, which
// decide whether the transaction failed, or to a new copy's Describe,
// whose shape decides whether the client's message must fail with 0A000
// as on its own server. In a failed transaction only a statement that
// ends it can be prepared; the caller answers for the others (unless the
// current Sync group ran something, which may have ended it: then the
// server decides).
func (t *Tracker) use(st *Statement) (usable, error) {
	name := st.Server
	t.keep[name] = true
	ready := t.srv.Ready(name) && !t.tentative(name) // Ready marks it used
	waited := t.waitedFor == name
	t.waitedFor = ""
	switch {
	case st.parsed && ready && st.shape != 0 && len(t.q) > 0 && t.preparing(name):
		return useReady, ErrWait // its description is on its way
	case st.parsed && ready && (st.shape == 0 || t.srv.shape(name) == st.shape):
		return useReady, nil
	case waited && ready:
		return useStale, nil // described afresh just now, and it differs
	case t.earlierPending():
		return useReady, ErrWait
	case t.status == 'E' && !t.ran && !endsTransaction(st):
		return useAborted, nil
	}
	known := st.parsed && st.shape != 0
	t.prepare(st, entry{hide: true})
	if !known {
		return useReady, nil // the shape is learned, not checked
	}
	t.waitedFor = name
	return useReady, ErrWait
}

// earlierPending reports whether a Sync group before the current one
// awaits answers.
func (t *Tracker) earlierPending() bool {
	for _, e := range t.q {
		if e.typ != copyEnd {
			return e.grp < t.group
		}
	}
	return false
}

// staleMessage is PostgreSQL's error for a statement whose result columns
// changed since it was prepared.
const staleMessage = "cached plan must not change result type"

// ensureUnnamed makes the server's unnamed statement st, the client's
// (or its EXECUTE parsed again: see rebound), before a Bind or Describe
// of it: prepared again when the client made it on an earlier server,
// closed when the client has none, so another client's is never used. It
// reports whether it injected a message.
func (t *Tracker) ensureUnnamed(st *Statement) bool {
	sure := !t.tentative("")
	switch {
	case st == nil && t.srv.unnamed == "" && sure:
		return false
	case st == nil:
		t.in.Buf = AppendTarget(t.in.Buf, 'C', 'S', "")
		t.push(entry{typ: 'C', hide: true, ok: []effect{t.serverUnnamed("")}})
		return true
	case t.srv.unnamed == st.Server && sure:
		return false
	}
	t.in.Buf = AppendParse(t.in.Buf, "", st.sent(), st.ParamTypes)
	t.push(entry{typ: 'P', hide: true, ok: []effect{t.serverUnnamed(st.Server)}, failed: []effect{t.serverUnnamed("")}})
	return true
}

func (t *Tracker) bind(body []byte, off, n int) error {
	name, start, end, err := BindStatement(body)
	if err != nil {
		return err
	}
	if t.regTentative(name) {
		return ErrWait
	}
	t.lastStmt, t.lastRenames = "", nil
	if name == "" {
		st := t.reg.unnamed
		if st != nil && st.ref != "" && t.regTentative(st.ref) {
			return ErrWait
		}
		from := len(t.in.Buf)
		if t.refMoved(st) {
			st = t.rebound(st)
		}
		if !t.copyFor(st) {
			t.failAs(off, n, 'B', "0A000", noCopyMessage(st.ref))
			return nil
		}
		t.lastRenames = bindRenames(st)
		if t.ensureUnnamed(st) || len(t.in.Buf) > from {
			t.in.Buf = AppendRenamed(t.in.Buf, 'B', body, start, end, "")
			t.in.Replace(off, n, from)
		}
		t.push(entry{typ: 'B', ok: t.bindPortal(body, st)})
		return nil
	}
	st, use, from, err := t.clientStatement(off, n, 'B', name)
	if st == nil || err != nil {
		return err
	}
	switch use {
	case useStale:
		t.failAs(off, n, 'B', "0A000", staleMessage)
		return nil
	case useAborted:
		code, msg := bindInFailedTransaction(body[end+1:], name, st)
		t.failAs(off, n, 'B', code, msg)
		return nil
	}
	t.in.Buf = AppendRenamed(t.in.Buf, 'B', body, start, end, st.Server)
	t.in.Replace(off, n, from)
	t.lastStmt, t.lastRenames = st.Server, bindRenames(st)
	t.push(entry{typ: 'B', stmt: st.Server, name: name, ok: t.bindPortal(body, st)})
	return nil
}

// bindPortal returns the effects of a Bind on what its portal does when
// run: a DEALLOCATE or DISCARD ALL, or nothing pgvalve needs to know (none
// at all for the usual Bind).
func (t *Tracker) bindPortal(body []byte, st *Statement) []effect {
	var act action
	if st != nil {
		act = st.act
	}
	if act == (action{}) && len(t.portals) == 0 {
		return nil
	}
	portal, _, _ := cstr(body)
	return []effect{t.portalSet(string(portal), act)}
}

// portalAction is what executing a portal does to prepared statements,
// and the Sync group that bound it.
type portalAction struct {
	action
	grp int
}

func (t *Tracker) describe(body []byte, off, n int) error {
	kind, name, err := Target(body)
	if err != nil {
		return err
	}
	if kind == 'P' {
		t.push(entry{typ: 'D'})
		return nil
	}
	if t.regTentative(name) {
		return ErrWait
	}
	if name == "" {
		from := len(t.in.Buf)
		t.copyFor(t.reg.unnamed) // for its description; its Bind refuses
		if t.ensureUnnamed(t.reg.unnamed) || len(t.in.Buf) > from {
			t.in.Buf = AppendTarget(t.in.Buf, 'D', 'S', "")
			t.in.Replace(off, n, from)
		}
		t.push(entry{typ: 'D', descS: true})
		return nil
	}
	st, use, from, err := t.clientStatement(off, n, 'D', name)
	if st == nil || err != nil {
		return err
	}
	switch {
	case use == useStale:
		t.failAs(off, n, 'D', "0A000", staleMessage)
		return nil
	case use == useAborted && (st.rows || st.desc == nil):
		t.failAs(off, n, 'D', "25P02", abortedMessage)
		return nil
	case use == useAborted:
		// PostgreSQL still describes a statement that returns no rows;
		// a Close of nothing keeps the answer in the server's order.
		t.in.Buf = AppendTarget(t.in.Buf, 'C', 'S', noopName)
		t.in.Replace(off, n, from)
		t.push(entry{typ: 'C', x: &extra{answer: describedNoRows(st.desc)}})
		return nil
	}
	t.in.Buf = AppendTarget(t.in.Buf, 'D', 'S', st.Server)
	t.in.Replace(off, n, from)
	t.push(entry{typ: 'D', descS: true, stmt: st.Server, name: name})
	return nil
}

func (t *Tracker) close(body []byte, off, n int) error {
	kind, name, err := Target(body)
	if err != nil {
		return err
	}
	e := entry{typ: 'C'}
	switch {
	case kind == 'P':
		e.ok = []effect{t.portalSet(name, action{})}
	case name == "":
		e.ok = []effect{t.clientUnnamed(nil), t.serverUnnamed("")}
	default:
		// The client's statement goes; the server's copy stays for others.
		e.ok = []effect{t.regDel(name)}
		from := len(t.in.Buf)
		t.in.Buf = AppendTarget(t.in.Buf, 'C', 'S', noopName)
		t.in.Replace(off, n, from)
	}
	t.push(e)
	return nil
}

// execute books an Execute; one of a portal bound to a DEALLOCATE or
// DISCARD ALL changes the client's statements and the server's as it runs.
func (t *Tracker) execute(body []byte, off, n int) error {
	e := entry{typ: 'E', stmt: t.lastStmt}
	if t.lastRenames != nil {
		e.more().renames = t.lastRenames
	}
	if len(t.portals) == 0 {
		t.push(e) // the usual Execute: no portal runs a DEALLOCATE
		return nil
	}
	portal, _, ok := cstr(body)
	act, acts := t.portals[string(portal)]
	switch {
	case !ok || !acts:
	case t.earlierPending():
		// Bound before a Sync still unanswered: the portal lives on only
		// if that Sync did not end the transaction, and only its answer
		// says whether the transaction failed.
		return ErrWait
	case t.status == 'E' && !t.ran:
		// PostgreSQL refuses to run it (25P02), so nothing is dropped.
	case act.prep != "":
		if err := t.executePrepare(&e, string(portal), act.action, off, n); err != nil {
			return err
		}
	case act.reset:
		e.ok = []effect{t.srvClear(), t.regClearNamed(), t.portalSet(string(portal), action{})}
		e.more().reset = true
	default:
		if t.regTentative(act.dealloc) {
			return ErrWait
		}
		if _, known := t.reg.Get(act.dealloc); !known {
			// PostgreSQL's error, raised as it runs; the server's
			// DEALLOCATE ALL never runs.
			from := len(t.in.Buf)
			t.in.Buf = appendExecuteNoop(t.in.Buf)
			t.in.Replace(off, n, from)
			e.more().errAs = &errRewrite{"34000", "26000", `prepared statement "` + act.dealloc + `" does not exist`, noopName}
			break
		}
		// The server runs DEALLOCATE ALL (see Statement.sent); the portal
		// is spent, so running it again is the server's to refuse.
		e.ok = []effect{t.regDel(act.dealloc), t.srvClear(), t.portalSet(string(portal), action{})}
		e.x = &extra{tag: "DEALLOCATE", reset: true}
	}
	t.push(e)
	return nil
}

// query handles a simple Query. PostgreSQL drops the unnamed statement when
// it runs one, even if it fails. DEALLOCATE ALL and DISCARD ALL empty the
// client's statements; SQL naming the client's statements is rewritten
// (see sqlnames.go).
func (t *Tracker) query(body []byte, off, n int) error {
	drop := t.dropUnnamed()
	e := entry{typ: 'Q', ok: drop, failed: drop}
	words := sqlWordsIn(body) // most queries: none, and nothing more to look at
	switch {
	case words&(wordDeallocate|wordDiscard) != 0 && (resetCommand(body) != "" || doesDeallocateAll(body)):
		e.ok = slices.Concat(drop, []effect{t.srvClear(), t.regClear()})
		e.more().reset = true
	case len(body) > 1 && words != 0 && namesPrepared(body):
		if err := t.querySQLNames(body, off, n, &e); err != nil {
			return err
		}
	}
	t.push(e)
	return nil
}

func appendQuery(dst []byte, sql string) []byte {
	dst = append(dst, 'Q')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(sql)+1))
	dst = append(dst, sql...)
	return append(dst, 0)
}

// appendBindNoop appends a Bind of the never-prepared statement.
func appendBindNoop(dst []byte) []byte {
	body := []byte{0}
	body = append(body, noopName...)
	body = append(body, 0, 0, 0, 0, 0, 0, 0) // its NUL; no formats, no params, no result formats
	dst = append(dst, 'B')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}

// appendExecuteNoop appends an Execute of a portal that never exists.
func appendExecuteNoop(dst []byte) []byte {
	dst = append(dst, 'E')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(noopName)+1+4))
	dst = append(dst, noopName...)
	return append(dst, 0, 0, 0, 0, 0)
}

// abortedMessage is PostgreSQL's error for a statement in a failed
// transaction.
const abortedMessage = "current transaction is aborted, commands ignored until end of transaction block"

// bindInFailedTransaction is PostgreSQL's answer to a Bind of st in a
// failed transaction (rest follows the Bind's statement name): its checks
// of the parameter counts come first.
func bindInFailedTransaction(rest []byte, name string, st *Statement) (code, msg string) {
	formats, params, ok := bindCounts(rest)
	want := paramCount(st)
	switch {
	case !ok:
		return "08P01", "insufficient data left in message"
	case formats > 1 && formats != params:
		return "08P01", fmt.Sprintf("bind message has %d parameter formats but %d parameters", formats, params)
	case params != want:
		return "08P01", fmt.Sprintf("bind message supplies %d parameters, but prepared statement \"%s\" requires %d", params, name, want)
	}
	return "25P02", abortedMessage
}

// bindCounts reads a Bind's parameter format count and parameter count
// from what follows its statement name.
func bindCounts(rest []byte) (formats, params int, ok bool) {
	if len(rest) < 2 {
		return 0, 0, false
	}
	formats = int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*formats+2 {
		return 0, 0, false
	}
	return formats, int(binary.BigEndian.Uint16(rest[2*formats:])), true
}

// describedNoRows is PostgreSQL's answer to a Describe of a statement that
// returns no rows: its parameters and NoData.
func describedNoRows(desc []byte) []byte {
	out := append([]byte{'t'}, binary.BigEndian.AppendUint32(nil, uint32(4+len(desc)))...)
	out = append(out, desc...)
	return append(out, 'n', 0, 0, 0, 4)
}

// paramCount is how many parameters PostgreSQL gave st: from its
// description, or before one, the types its Parse declared or the highest
// $n its query refers to, whichever is more.
func paramCount(st *Statement) int {
	if len(st.desc) >= 2 {
		return int(binary.BigEndian.Uint16(st.desc))
	}
	declared := 0
	if len(st.ParamTypes) >= 2 {
		declared = max(int(int16(binary.BigEndian.Uint16(st.ParamTypes))), 0)
	}
	return max(declared, sqlscan.HighestParam(st.Query))
}

// endsTransaction reports whether st may end a transaction block (COMMIT,
// END, ROLLBACK, ABORT, PREPARE TRANSACTION): PostgreSQL parses and runs
// those in a failed transaction. Only the first word counts, so pgvalve
// errs towards asking the server.
func endsTransaction(st *Statement) bool {
	return sqlscan.FirstWordIs(st.Query, "commit", "end", "rollback", "abort", "prepare")
}
