package stmt

import (
	"encoding/binary"
	"maps"
	"strings"
)

// noopName is never prepared: a Close of it is a no-op the server still
// answers, which pgvalve uses to keep its own answers in the server's order.
const noopName = serverPrefix + "noop"

// Tracker follows one client's conversation with the server it holds now.
// It rewrites client messages (Client) and the server's answers (Server).
// The caller serialises calls; the two directions keep separate buffers so
// Apply* need no lock.
//
// A message's effects on the Registry and ServerSet are made when it is
// sent, so the rest of a pipeline is rewritten as if it succeeded; each
// entry keeps how to undo them, for when the server fails the message or
// skips it after an earlier error (until the next Sync).
type Tracker struct {
	reg *Registry
	srv *ServerSet

	q        []entry // answers expected, oldest first
	lastStmt string  // server statement of the latest Bind, for Execute
	// skipping: the server failed a message and skips everything up to a
	// Sync the client has not sent yet; nothing it skips gets an answer.
	skipping bool

	in, outEdits edits
	inBuf        []byte
	outBuf       []byte
	keep         map[string]bool // statements the batch being rewritten needs
}

// entry is the answer expected to one message sent to the server.
type entry struct {
	typ   byte   // message answered: P B D E C S Q F
	descS bool   // a Describe of a statement: 't' comes before 'T'/'n'
	hide  bool   // pgvalve's own message: its answer is dropped
	as    byte   // answer the client with this type instead (ParseComplete for a skipped Parse)
	dup   string // client name of a duplicate Parse: the server's error becomes 42P05
	stmt  string // server statement this message uses (B, D, E), for stale plans
	tag   string // CommandComplete tag the client sees instead (a rewritten DEALLOCATE)
	reset bool   // a DEALLOCATE ALL or DISCARD ALL already applied when sent
	// undo reverts the message's effects if the server skips it; undoFail
	// if it fails (for a simple Query, part of its effects happen anyway).
	undo, undoFail []func()
}

// NewTracker returns a tracker over a client's registry.
func NewTracker(reg *Registry) *Tracker {
	return &Tracker{reg: reg, keep: make(map[string]bool)}
}

// Attach starts tracking on a newly leased server with its statements.
func (t *Tracker) Attach(srv *ServerSet) {
	t.srv = srv
	t.q = t.q[:0]
	t.lastStmt = ""
}

// Pending reports answers still expected.
func (t *Tracker) Pending() int { return len(t.q) }

// BeginBatch starts rewriting a batch of client messages.
func (t *Tracker) BeginBatch() {
	t.in.reset()
	clear(t.keep)
}

// ApplyBatch returns the batch to send: span with the rewrites made.
func (t *Tracker) ApplyBatch(span []byte) []byte {
	if len(t.in.list) == 0 {
		return span
	}
	t.inBuf = t.in.apply(span, t.inBuf)
	return t.inBuf
}

// Client rewrites one whole client message of type typ at offset off in
// the batch. aborted is unused: PostgreSQL refuses a Parse in a failed
// transaction itself, except of COMMIT and ROLLBACK, which must go through.
func (t *Tracker) Client(typ byte, body []byte, off int, aborted bool) error {
	if t.skipping {
		// The server skips it unanswered; only Sync ends that.
		if typ == 'S' {
			t.skipping = false
			t.push(entry{typ: 'S'})
		}
		return nil
	}
	n := 5 + len(body)
	switch typ {
	case 'P':
		return t.parse(body, off, n)
	case 'B':
		return t.bind(body, off, n)
	case 'D':
		return t.describe(body, off, n)
	case 'C':
		return t.close(body, off, n)
	case 'E':
		t.push(entry{typ: 'E', stmt: t.lastStmt})
	case 'Q':
		t.query(body, off, n)
	case 'S', 'F':
		t.push(entry{typ: typ})
	}
	return nil
}

func (t *Tracker) push(e entry) { t.q = append(t.q, e) }

// Effects on the client's registry and the server's set, each recording
// its undo in u.

func (t *Tracker) regAdd(u *[]func(), name string, st *Statement) {
	prev, had := t.reg.Get(name)
	t.reg.Add(name, st)
	*u = append(*u, func() {
		if had {
			t.reg.Add(name, prev)
		} else {
			t.reg.Remove(name)
		}
	})
}

func (t *Tracker) regRemove(u *[]func(), name string) {
	prev, had := t.reg.Get(name)
	if !had {
		return
	}
	t.reg.Remove(name)
	*u = append(*u, func() { t.reg.Add(name, prev) })
}

func (t *Tracker) setUnnamed(u *[]func(), client *Statement, server string) {
	prevClient, prevServer := t.reg.unnamed, t.srv.unnamed
	t.reg.unnamed, t.srv.unnamed = client, server
	*u = append(*u, func() { t.reg.unnamed, t.srv.unnamed = prevClient, prevServer })
}

// prepare sends a Parse of st under its server name, making room on the
// server first (hidden Closes of the least recently used statements, and
// of st itself if its plan went stale). The Parse's own entry is e.
func (t *Tracker) prepare(st *Statement, e entry) {
	t.keep[st.Server] = true
	if t.srv.Stale(st.Server) {
		t.srv.Remove(st.Server)
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', st.Server)
		name := st.Server
		t.push(entry{typ: 'C', hide: true, undo: []func(){func() { t.srv.restore(name, true) }}})
	}
	added := !t.srv.Has(st.Server)
	for _, victim := range t.srv.Add(st.Server, t.keep) {
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', victim)
		t.push(entry{typ: 'C', hide: true, undo: []func(){func() { t.srv.restore(victim, false) }}})
	}
	if added {
		name := st.Server
		e.undo = append(e.undo, func() { t.srv.Remove(name) })
	}
	e.typ = 'P'
	t.in.buf = AppendParse(t.in.buf, st.Server, st.Query, st.ParamTypes)
	t.push(e)
}

func (t *Tracker) parse(body []byte, off, n int) error {
	p, err := DecodeParse(body)
	if err != nil {
		return err
	}
	st := &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: ServerName(p.Query, p.ParamTypes)}
	if p.Name == "" {
		var e entry
		t.setUnnamed(&e.undo, st, st.Server)
		e.typ = 'P'
		t.push(e)
		return nil
	}
	from := len(t.in.buf)
	if _, dup := t.reg.Get(p.Name); dup {
		// Bind to a statement that never exists makes the server fail and
		// skip to Sync, as a duplicate Parse would; its error is rewritten.
		t.in.buf = appendBindNoop(t.in.buf)
		t.in.replace(off, n, from)
		t.push(entry{typ: 'P', dup: p.Name})
		return nil
	}
	var e entry
	t.regAdd(&e.undo, p.Name, st)
	if t.srv.Ready(st.Server) {
		// Already on this server: answer in the server's order with a
		// Close of nothing, shown to the client as its ParseComplete.
		t.keep[st.Server] = true
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
		t.in.replace(off, n, from)
		e.typ, e.as = 'C', '1'
		t.push(e)
		return nil
	}
	t.prepare(st, e)
	t.in.replace(off, n, from)
	return nil
}

// ensure prepares st on the server before the message being rewritten, if
// it is missing or stale there; the answers are hidden.
func (t *Tracker) ensure(st *Statement) {
	t.keep[st.Server] = true
	if !t.srv.Ready(st.Server) {
		t.prepare(st, entry{hide: true})
	}
}

// ensureUnnamed makes the server's unnamed statement the client's before
// a Bind or Describe of it: prepared again when the client made it on an
// earlier server, closed when the client has none, so another client's is
// never used. It reports whether it injected a message.
func (t *Tracker) ensureUnnamed() bool {
	st := t.reg.unnamed
	switch {
	case st == nil && t.srv.unnamed == "":
		return false
	case st == nil:
		var e entry
		t.setUnnamed(&e.undo, nil, "")
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', "")
		e.typ, e.hide = 'C', true
		t.push(e)
		return true
	case t.srv.unnamed == st.Server:
		return false
	}
	var e entry
	t.setUnnamed(&e.undo, st, st.Server)
	t.in.buf = AppendParse(t.in.buf, "", st.Query, st.ParamTypes)
	e.typ, e.hide = 'P', true
	t.push(e)
	return true
}

func (t *Tracker) bind(body []byte, off, n int) error {
	name, start, end, err := BindStatement(body)
	if err != nil {
		return err
	}
	t.lastStmt = ""
	if name == "" {
		from := len(t.in.buf)
		if t.ensureUnnamed() {
			t.in.buf = AppendRenamed(t.in.buf, 'B', body, start, end, "")
			t.in.replace(off, n, from)
		}
		t.push(entry{typ: 'B'})
		return nil
	}
	st, ok := t.reg.Get(name)
	if !ok {
		// Unknown: the server answers, with the client's name.
		t.push(entry{typ: 'B'})
		return nil
	}
	from := len(t.in.buf)
	t.ensure(st)
	t.in.buf = AppendRenamed(t.in.buf, 'B', body, start, end, st.Server)
	t.in.replace(off, n, from)
	t.lastStmt = st.Server
	t.push(entry{typ: 'B', stmt: st.Server})
	return nil
}

func (t *Tracker) describe(body []byte, off, n int) error {
	kind, name, err := Target(body)
	if err != nil {
		return err
	}
	if kind == 'S' && name == "" {
		from := len(t.in.buf)
		if t.ensureUnnamed() {
			t.in.buf = AppendTarget(t.in.buf, 'D', 'S', "")
			t.in.replace(off, n, from)
		}
		t.push(entry{typ: 'D', descS: true})
		return nil
	}
	st, ok := t.reg.Get(name)
	if kind != 'S' || !ok {
		t.push(entry{typ: 'D', descS: kind == 'S'})
		return nil
	}
	from := len(t.in.buf)
	t.ensure(st)
	t.in.buf = AppendTarget(t.in.buf, 'D', 'S', st.Server)
	t.in.replace(off, n, from)
	t.push(entry{typ: 'D', descS: true, stmt: st.Server})
	return nil
}

func (t *Tracker) close(body []byte, off, n int) error {
	kind, name, err := Target(body)
	if err != nil {
		return err
	}
	var e entry
	e.typ = 'C'
	switch {
	case kind == 'P':
	case name == "":
		t.setUnnamed(&e.undo, nil, "")
	default:
		// The client's statement goes; the server's copy stays for others.
		t.regRemove(&e.undo, name)
		from := len(t.in.buf)
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
		t.in.replace(off, n, from)
	}
	t.push(e)
	return nil
}

// query handles a simple Query. PostgreSQL drops the unnamed statement when
// it runs one, even if it fails. A "DEALLOCATE name" of a client statement
// means nothing to the server under that name: it becomes DEALLOCATE ALL
// (same answer, tag aside; this server's statements are prepared again on
// demand). DEALLOCATE ALL and DISCARD ALL empty the client's statements.
func (t *Tracker) query(body []byte, off, n int) {
	var e entry
	e.typ = 'Q'
	t.setUnnamed(&e.undo, nil, "")
	switch cmd := resetCommand(body); {
	case cmd != "":
		t.forgetAll(&e.undoFail)
		e.reset = true
	default:
		name, ok := deallocateName(body)
		if _, known := t.reg.Get(name); !ok || !known {
			break // the server reports an unknown name itself
		}
		t.regRemove(&e.undoFail, name)
		t.forgetServer(&e.undoFail)
		from := len(t.in.buf)
		t.in.buf = appendQuery(t.in.buf, "DEALLOCATE ALL")
		t.in.replace(off, n, from)
		e.tag, e.reset = "DEALLOCATE", true
	}
	e.undo = append(e.undo, e.undoFail...)
	t.push(e)
}

// forgetServer empties the server's set, to be restored if undone.
func (t *Tracker) forgetServer(u *[]func()) {
	saved := t.srv.snapshot()
	t.srv.Clear()
	*u = append(*u, func() { t.srv.restoreAll(saved) })
}

// forgetAll empties the server's set and the client's statements.
func (t *Tracker) forgetAll(u *[]func()) {
	t.forgetServer(u)
	saved, unnamed := maps.Clone(t.reg.m), t.reg.unnamed
	t.reg.Clear()
	*u = append(*u, func() { t.reg.m, t.reg.unnamed = saved, unnamed })
}

// resetCommand recognises a one-statement DEALLOCATE ALL or DISCARD ALL.
func resetCommand(body []byte) string {
	if len(body) > 64 || len(body) == 0 || body[len(body)-1] != 0 {
		return ""
	}
	words := strings.Fields(strings.TrimSuffix(strings.TrimSpace(string(body[:len(body)-1])), ";"))
	if len(words) == 3 && strings.EqualFold(words[0], "deallocate") && strings.EqualFold(words[1], "prepare") {
		words = []string{words[0], words[2]}
	}
	if len(words) == 2 && strings.EqualFold(words[1], "all") &&
		(strings.EqualFold(words[0], "deallocate") || strings.EqualFold(words[0], "discard")) {
		return strings.ToUpper(words[0]) + " ALL"
	}
	return ""
}

// deallocateName recognises a one-statement "DEALLOCATE [PREPARE] name".
func deallocateName(body []byte) (string, bool) {
	if len(body) > 256 || len(body) == 0 || body[len(body)-1] != 0 {
		return "", false
	}
	words := strings.Fields(strings.TrimSuffix(strings.TrimSpace(string(body[:len(body)-1])), ";"))
	if len(words) == 3 && strings.EqualFold(words[1], "prepare") {
		words = []string{words[0], words[2]}
	}
	if len(words) != 2 || !strings.EqualFold(words[0], "deallocate") || strings.EqualFold(words[1], "all") {
		return "", false
	}
	name := words[1]
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		return strings.ReplaceAll(name[1:len(name)-1], `""`, `"`), true
	}
	return strings.ToLower(name), true
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
	body = append(body, 0, 0, 0, 0, 0, 0) // no formats, no params, no result formats
	dst = append(dst, 'B')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}
