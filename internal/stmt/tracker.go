package stmt

import (
	"encoding/binary"
	"strings"
)

// noopName is never prepared: a Close of it is a no-op the server still
// answers, which pgvalve uses to keep its own answers in the server's order.
const noopName = serverPrefix + "noop"

// Tracker follows one client's conversation with the server it holds now.
// It rewrites client messages (Client) and the server's answers (Server).
// The caller serialises calls; the two directions keep separate buffers so
// Apply* need no lock.
type Tracker struct {
	reg *Registry
	srv *ServerSet

	q        []entry // answers expected, oldest first
	lastStmt string  // server statement of the latest Bind, for Execute

	in, outEdits edits
	inBuf        []byte
	outBuf       []byte
	keep         map[string]bool // statements the batch being rewritten needs
}

// entry is the answer expected to one message sent to the server.
type entry struct {
	typ     byte   // message answered: P B D E C S Q F
	descS   bool   // a Describe of a statement: 't' comes before 'T'/'n'
	hide    bool   // pgvalve's own message: its answer is dropped
	as      byte   // answer the client with this type instead (ParseComplete for a skipped Parse)
	dup     string // client name of a duplicate Parse: the server's error becomes 42P05
	stmt    string // server statement this message prepares (P) or uses (B, D, E)
	added   bool   // this Parse added stmt to the server's set: undo if it fails
	client  string // client name a forwarded Parse registers
	again   bool   // a Query pgvalve rewrote: its DEALLOCATE ALL is not the client's
	unnamed bool   // a Parse of the unnamed statement
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
// the batch. aborted says the server's transaction has failed, where
// PostgreSQL refuses every Parse.
func (t *Tracker) Client(typ byte, body []byte, off int, aborted bool) error {
	n := 5 + len(body)
	switch typ {
	case 'P':
		return t.parse(body, off, n, aborted)
	case 'B':
		return t.bind(body, off, n)
	case 'D':
		return t.describe(body, off, n)
	case 'C':
		return t.close(body, off, n)
	case 'E':
		t.push(entry{typ: 'E', stmt: t.lastStmt})
	case 'Q':
		// A simple query drops the unnamed statement, for the client too.
		t.reg.unnamed, t.srv.unnamed = nil, ""
		t.push(entry{typ: 'Q', again: t.deallocate(body, off, n)})
	case 'S', 'F':
		t.push(entry{typ: typ})
	}
	return nil
}

func (t *Tracker) push(e entry) { t.q = append(t.q, e) }

func (t *Tracker) parse(body []byte, off, n int, aborted bool) error {
	p, err := DecodeParse(body)
	if err != nil {
		return err
	}
	if p.Name == "" {
		st := &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: ServerName(p.Query, p.ParamTypes)}
		t.reg.unnamed = st
		t.srv.unnamed = st.Server
		t.push(entry{typ: 'P', unnamed: true})
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
	st := &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: ServerName(p.Query, p.ParamTypes)}
	t.reg.Add(p.Name, st)
	t.keep[st.Server] = true
	if t.srv.Ready(st.Server) && !aborted {
		// Already on this server: answer from the server's order with a
		// Close of nothing, shown to the client as its ParseComplete.
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
		t.in.replace(off, n, from)
		t.push(entry{typ: 'C', as: '1'})
		return nil
	}
	t.closeStale(st.Server)
	added := t.evictFor(st.Server)
	t.in.buf = AppendParse(t.in.buf, st.Server, p.Query, p.ParamTypes)
	t.in.replace(off, n, from)
	t.push(entry{typ: 'P', stmt: st.Server, added: added, client: p.Name})
	return nil
}

// ensure prepares st on the server before the message being rewritten, if
// it is missing or stale there; the answers are hidden.
func (t *Tracker) ensure(st *Statement) {
	t.keep[st.Server] = true
	if t.srv.Ready(st.Server) {
		return
	}
	t.closeStale(st.Server)
	added := t.evictFor(st.Server)
	t.in.buf = AppendParse(t.in.buf, st.Server, st.Query, st.ParamTypes)
	t.push(entry{typ: 'P', hide: true, stmt: st.Server, added: added})
}

// ensureUnnamed prepares the client's unnamed statement on the server when
// the server's unnamed statement is another (the client prepared it on an
// earlier server). It reports whether it injected a Parse.
func (t *Tracker) ensureUnnamed() bool {
	st := t.reg.unnamed
	if st == nil || t.srv.unnamed == st.Server {
		return false
	}
	t.in.buf = AppendParse(t.in.buf, "", st.Query, st.ParamTypes)
	t.srv.unnamed = st.Server
	t.push(entry{typ: 'P', hide: true, unnamed: true})
	return true
}

// closeStale closes a statement whose plan went stale, so it can be
// prepared afresh.
func (t *Tracker) closeStale(server string) {
	if t.srv.Stale(server) {
		t.srv.Remove(server)
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', server)
		t.push(entry{typ: 'C', hide: true})
	}
}

// evictFor makes room for server and records it as prepared; the least
// recently used statement the batch does not need is closed. It reports
// whether server was not held before.
func (t *Tracker) evictFor(server string) (added bool) {
	added = !t.srv.Has(server)
	if victim := t.srv.Add(server, t.keep); victim != "" {
		t.in.buf = AppendTarget(t.in.buf, 'C', 'S', victim)
		t.push(entry{typ: 'C', hide: true})
	}
	return added
}

func (t *Tracker) bind(body []byte, off, n int) error {
	name, start, end, err := BindStatement(body)
	if err != nil {
		return err
	}
	if name == "" {
		from := len(t.in.buf)
		if t.ensureUnnamed() {
			t.in.buf = AppendRenamed(t.in.buf, 'B', body, start, end, "")
			t.in.replace(off, n, from)
		}
		t.lastStmt = ""
		t.push(entry{typ: 'B'})
		return nil
	}
	st, ok := t.reg.Get(name)
	if !ok {
		// Unknown: the server answers, with the client's name.
		t.lastStmt = ""
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
	if kind != 'S' || name == "" {
		t.push(entry{typ: 'C'})
		return nil
	}
	// The client's statement goes; the server's copy stays for others.
	t.reg.Remove(name)
	from := len(t.in.buf)
	t.in.buf = AppendTarget(t.in.buf, 'C', 'S', noopName)
	t.in.replace(off, n, from)
	t.push(entry{typ: 'C'})
	return nil
}

// deallocate rewrites a simple "DEALLOCATE name" of a client statement: the
// client's name means nothing to the server. It becomes DEALLOCATE ALL,
// which answers the same and drops this server's statements (they are
// prepared again on demand).
func (t *Tracker) deallocate(body []byte, off, n int) (rewrote bool) {
	name, ok := deallocateName(body)
	if !ok {
		return false
	}
	if _, known := t.reg.Get(name); !known {
		return false // the server reports the unknown name itself
	}
	t.reg.Remove(name)
	from := len(t.in.buf)
	t.in.buf = appendQuery(t.in.buf, "DEALLOCATE ALL")
	t.in.replace(off, n, from)
	return true
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
