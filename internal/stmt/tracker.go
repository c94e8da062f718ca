package stmt

import (
	"encoding/binary"
	"errors"
	"slices"
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
// sent, so the rest of a pipeline is rewritten as if it succeeded; they are
// reverted when the server fails the message or skips it after an earlier
// error (until the next Sync): see effects.go.
type Tracker struct {
	reg *Registry
	srv *ServerSet

	q        []entry // answers expected, oldest first
	lastStmt string  // server statement of the latest Bind, for Execute
	// skipping: the server failed a message and skips everything up to a
	// Sync the client has not sent yet; nothing it skips gets an answer.
	skipping bool
	status   byte // the server's transaction status at its last ReadyForQuery
	// copyIn: the server is in COPY FROM STDIN and the client has not
	// ended it; the server ignores a Sync sent now.
	copyIn bool
	execs  int // Execute, Query and FunctionCall messages in q
	// group counts the Sync groups sent (a simple Query ends one too);
	// touched is the group that last changed each server statement ("" for
	// the unnamed one), clearedAt the last to drop all: see tentative.
	group     int
	touched   map[string]int
	clearedAt int

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
	grp   int    // the Sync group it belongs to
	// ok are its effects if it succeeds, made when it is sent; failed
	// replaces them if the server runs it and it fails (a skipped message
	// has none); undo reverts those made.
	ok, failed []effect
	undo       []func()
}

// NewTracker returns a tracker over a client's registry.
func NewTracker(reg *Registry) *Tracker {
	return &Tracker{reg: reg, keep: make(map[string]bool), touched: make(map[string]int), status: 'I', clearedAt: -1}
}

// Attach starts tracking on a newly leased server with its statements.
func (t *Tracker) Attach(srv *ServerSet) {
	t.srv = srv
	t.q = t.q[:0]
	t.lastStmt = ""
	t.status, t.execs, t.copyIn = 'I', 0, false
	t.settle()
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

// Client rewrites one client message of type typ, n bytes long with its
// header, at offset off in the batch. body is nil for a message bigger
// than the read buffer, which streams through: only types whose
// bookkeeping needs no body stream (see Decoded), and a Query that long is
// never a DEALLOCATE or DISCARD. aborted reports a failed transaction at
// the batch's start.
func (t *Tracker) Client(typ byte, body []byte, off, n int, aborted bool) error {
	if t.skipping {
		// The server skips it unanswered; only Sync ends that.
		if typ == 'S' {
			t.skipping = false
			t.push(entry{typ: 'S'})
		}
		return nil
	}
	var err error
	switch typ {
	case 'P':
		err = t.parse(body, off, n, aborted)
	case 'B':
		err = t.bind(body, off, n)
	case 'D':
		err = t.describe(body, off, n)
	case 'C':
		err = t.close(body, off, n)
	case 'E':
		t.push(entry{typ: 'E', stmt: t.lastStmt})
	case 'Q':
		t.query(body, off, n)
	case 'S':
		if !t.copyIn {
			t.push(entry{typ: 'S'})
		}
	case 'F':
		t.push(entry{typ: 'F'})
	case 'c', 'f':
		t.endCopy()
	}
	if errors.Is(err, ErrMalformed) {
		// PostgreSQL reads it, answers a recoverable 08P01 ERROR and skips
		// to Sync: it goes as sent, with nothing booked.
		t.push(entry{typ: typ})
		err = nil
	}
	return err
}

// copyEnd marks in q where the client ended a COPY (CopyDone or CopyFail):
// Syncs sent before it during a COPY get no answer, those after it do.
// It expects no answer and is dropped when it reaches the head.
const copyEnd = 'c'

func (t *Tracker) endCopy() {
	t.copyIn = false
	if n := len(t.q); n > 0 && t.q[n-1].typ != copyEnd {
		t.q = append(t.q, entry{typ: copyEnd, grp: t.group})
	}
}

// copyStarted handles a CopyInResponse to the Execute or Query at the
// head: every message sent before it is answered, so the Syncs queued up
// to the client's end of the COPY were sent during it and are ignored.
func (t *Tracker) copyStarted() {
	kept := t.q[:1]
	ended := false
	for _, e := range t.q[1:] {
		if e.typ == 'S' && !ended {
			continue
		}
		ended = ended || e.typ == copyEnd
		kept = append(kept, e)
	}
	t.q = kept
	t.copyIn = !ended
}

// push makes a message's effects and expects its answer.
func (t *Tracker) push(e entry) {
	e.grp = t.group
	t.apply(&e)
	t.q = append(t.q, e)
	switch e.typ {
	case 'Q':
		t.execs++
		t.group++
	case 'S':
		t.group++
	case 'E', 'F':
		t.execs++
	}
}

// mayBeAborted reports whether the transaction may have failed by the time
// the server reads the message being rewritten.
func (t *Tracker) mayBeAborted(aborted bool) bool {
	return aborted || t.status != 'I' || t.execs > 0
}

// prepare sends a Parse of st under its server name, making room on the
// server first (hidden Closes of the least recently used statements, and
// of st itself if its plan went stale or its presence is tentative). The
// Parse's own entry is e.
func (t *Tracker) prepare(st *Statement, e entry) {
	name := st.Server
	t.keep[name] = true
	if t.srv.Stale(name) || t.tentative(name) {
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', name)
		t.push(entry{typ: 'C', hide: true, ok: []effect{t.srvDel(name)}})
	}
	for _, victim := range t.srv.victims(t.keep) {
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', victim)
		t.push(entry{typ: 'C', hide: true, ok: []effect{t.srvDel(victim)}})
	}
	e.typ = 'P'
	e.ok = append(e.ok, t.srvAdd(name))
	t.in.buf = AppendParse(t.in.buf, name, st.Query, st.ParamTypes)
	t.push(e)
}

func (t *Tracker) parse(body []byte, off, n int, aborted bool) error {
	p, err := DecodeParse(body)
	if err != nil {
		return err
	}
	st := &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: ServerName(p.Query, p.ParamTypes)}
	if p.Name == "" {
		// PostgreSQL drops the unnamed statement before parsing.
		t.push(entry{typ: 'P', ok: []effect{t.clientUnnamed(st), t.serverUnnamed(st.Server)},
			failed: []effect{t.clientUnnamed(nil), t.serverUnnamed("")}})
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
	e := entry{ok: []effect{t.regSet(p.Name, st)}}
	switch {
	case !t.srv.Ready(st.Server) || t.tentative(st.Server):
		t.prepare(st, e)
	case t.mayBeAborted(aborted):
		// Already on this server, but a failed transaction refuses a
		// Parse: parse the text as pgv_noop, closed at once, so the
		// server answers as it would the client's.
		t.keep[st.Server] = true
		t.in.buf = AppendParse(t.in.buf, noopName, st.Query, st.ParamTypes)
		e.typ = 'P'
		t.push(e)
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
		t.push(entry{typ: 'C', hide: true})
	default:
		// Already on this server: answer in the server's order with a
		// Close of nothing, shown to the client as its ParseComplete.
		t.keep[st.Server] = true
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
		e.typ, e.as = 'C', '1'
		t.push(e)
	}
	t.in.replace(off, n, from)
	return nil
}

// ensure prepares st on the server before the message being rewritten, if
// it is missing or stale there; the answers are hidden.
func (t *Tracker) ensure(st *Statement) {
	t.keep[st.Server] = true
	if !t.srv.Ready(st.Server) || t.tentative(st.Server) {
		t.prepare(st, entry{hide: true})
	}
}

// ensureUnnamed makes the server's unnamed statement the client's before
// a Bind or Describe of it: prepared again when the client made it on an
// earlier server, closed when the client has none, so another client's is
// never used. It reports whether it injected a message.
func (t *Tracker) ensureUnnamed() bool {
	st, sure := t.reg.unnamed, !t.tentative("")
	switch {
	case st == nil && t.srv.unnamed == "" && sure:
		return false
	case st == nil:
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', "")
		t.push(entry{typ: 'C', hide: true, ok: []effect{t.serverUnnamed("")}})
		return true
	case t.srv.unnamed == st.Server && sure:
		return false
	}
	t.in.buf = AppendParse(t.in.buf, "", st.Query, st.ParamTypes)
	t.push(entry{typ: 'P', hide: true, ok: []effect{t.serverUnnamed(st.Server)}, failed: []effect{t.serverUnnamed("")}})
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
	e := entry{typ: 'C'}
	switch {
	case kind == 'P':
	case name == "":
		e.ok = []effect{t.clientUnnamed(nil), t.serverUnnamed("")}
	default:
		// The client's statement goes; the server's copy stays for others.
		e.ok = []effect{t.regDel(name)}
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
	drop := []effect{t.clientUnnamed(nil), t.serverUnnamed("")}
	e := entry{typ: 'Q', ok: drop, failed: drop}
	switch cmd := resetCommand(body); {
	case cmd != "":
		t.clearedAt = t.group
		e.ok = slices.Concat(drop, []effect{t.srvClear(), t.regClear()})
		e.reset = true
	default:
		name, ok := deallocateName(body)
		if _, known := t.reg.Get(name); !ok || !known {
			break // the server reports an unknown name itself
		}
		t.clearedAt = t.group
		e.ok = slices.Concat(drop, []effect{t.regDel(name), t.srvClear()})
		from := len(t.in.buf)
		t.in.buf = appendQuery(t.in.buf, "DEALLOCATE ALL")
		t.in.replace(off, n, from)
		e.tag, e.reset = "DEALLOCATE", true
	}
	t.push(e)
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
