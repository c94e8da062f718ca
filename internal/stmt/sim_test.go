package stmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// sim runs clients two ways at once: each against a dedicated model
// backend of its own (what it would see with a server to itself), and
// through a Tracker against shared model backends, each with its own
// ServerSet, that clients lease between transactions as pgvalve's
// transaction pooling does. What each client sees must be the same, and at
// every receive the Tracker's books must match the backends. A round is
// what a client sent since its last receive: the state matched before it,
// so a difference is caused by it, and explain looks only at it.
type sim struct {
	t        testing.TB
	strict   bool // every difference fails, known bugs included
	clients  []*simClient
	backends []*simBackend
	max      int
	trace    []string
	known    string         // the known bug that ended the run
	hits     map[string]int // known bugs met, by name
}

type simClient struct {
	id        int
	ded       *modelBackend // the dedicated server
	tr        *Tracker
	held      int  // shared backend leased, -1 for none
	status    byte // the last ReadyForQuery status seen through pgvalve
	unsent    []byte
	lastSent  byte
	want, got []byte // answers of the dedicated server and through pgvalve, not yet compared
	round     int    // receives made
	// Conditions of known bugs met this round.
	deferredFailed bool // Defer accepted a Parse the dedicated server refused
	repair         bool // a known bug struck: repair the books at the round's end
}

type simBackend struct {
	m        *modelBackend
	set      *ServerSet
	owner    int
	overflow bool // a batch needed more than max statements: Len may exceed max until an Add
}

func newSim(t testing.TB, clients, backends, max int, strict bool) *sim {
	s := &sim{t: t, strict: strict, max: max, hits: map[string]int{}}
	for i := range clients {
		s.clients = append(s.clients, &simClient{id: i, ded: newModelBackend(), tr: NewTracker(NewRegistry()), held: -1})
	}
	for range backends {
		s.backends = append(s.backends, &simBackend{m: newModelBackend(), set: NewServerSet(max), owner: -1})
	}
	return s
}

func (s *sim) stopped() bool { return s.known != "" }

func (s *sim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

// problem reports a difference met in client c's round: a failure,
// unless (outside strict mode) a known bug explains it. Then the run goes
// on once the round's state is repaired, or ends where it cannot be.
func (s *sim) problem(c *simClient, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !s.strict {
		if why := s.explain(c); why != "" {
			s.logf("known: %s", why)
			s.hits[why]++
			c.repair = true
			return
		}
	}
	s.t.Fatalf("%s\ntrace:\n  %s", msg, strings.Join(s.trace, "\n  "))
}

// msg queues one client message, unsent until send.
func (s *sim) msg(ci int, m pgproto3.FrontendMessage) {
	c := s.clients[ci]
	c.unsent = append(c.unsent, fe(m)...)
}

func frameBatch(t testing.TB, batch []byte) []wire.Frame {
	rd := wire.NewReader(bytes.NewReader(batch), len(batch)+64, 1<<20)
	rd.SetWhole(Decoded)
	if err := rd.Fill(); err != nil {
		t.Fatalf("fill: %v", err)
	}
	var fs []wire.Frame
	for {
		f, ok, err := rd.Next()
		if err != nil {
			t.Fatalf("framing the batch: %v", err)
		}
		if !ok {
			break
		}
		fs = append(fs, f)
	}
	if len(rd.Take()) != len(batch) {
		t.Fatalf("batch not framed whole")
	}
	return fs
}

// stamp marks log entries from i on as client c's, in its current round.
func stamp(log []modelEvent, i int, c *simClient) {
	for ; i < len(log); i++ {
		log[i].who, log[i].round = c.id, c.round
	}
}

// send sends a client's queued messages as one batch: to its dedicated
// server, and through its Tracker to the shared backend it holds (leasing
// one, preferring pref, when it holds none), or answered by Defer.
func (s *sim) send(ci, pref int) {
	c := s.clients[ci]
	if len(c.unsent) == 0 || s.stopped() {
		return
	}
	batch := c.unsent
	c.unsent = nil
	frames := frameBatch(s.t, batch)
	s.logf("c%d sends: %s", ci, describeStream(s.t, batch))
	from := len(c.ded.log)
	c.ded.feed(batch)
	stamp(c.ded.log, from, c)
	c.want = append(c.want, c.ded.take()...)
	c.lastSent = frames[len(frames)-1].Type
	if c.held < 0 {
		msgs := make([]Message, len(frames))
		for i, f := range frames {
			msgs[i] = Message{Type: f.Type, Body: f.Body}
		}
		if c.tr.Deferrable(msgs) {
			out, err := c.tr.Defer(msgs, nil)
			if err != nil {
				s.t.Fatalf("Defer: %v", err)
			}
			c.got = append(c.got, out...)
			s.logf("c%d deferred", ci)
			for _, ev := range c.ded.log[from:] {
				if ev.typ == 'P' && ev.code != "" && ev.code != "42P05" {
					c.deferredFailed = true
				}
			}
			return
		}
		s.attach(c, pref)
	}
	s.forward(c, batch, frames)
}

// flush is a Flush message, which the relay sends before it waits.
var flush = []byte{'H', 0, 0, 0, 4}

// forward rewrites a batch through the client's Tracker and feeds it to
// its backend. A message that must wait for answers (ErrWait) sends what
// comes before it and a Flush, and the answers are taken in first, as the
// relay does.
func (s *sim) forward(c *simClient, batch []byte, frames []wire.Frame) {
	b := s.backends[c.held]
	base := 0
	for len(frames) > 0 && !s.stopped() {
		c.tr.BeginBatch()
		cut := len(frames)
		for i, f := range frames {
			err := c.tr.Client(f.Type, f.Body, f.Off-base, f.Total())
			if errors.Is(err, ErrWait) {
				cut = i
				break
			}
			if err != nil {
				s.t.Fatalf("Client(%q): %v", f.Type, err)
			}
		}
		end := len(batch)
		if cut < len(frames) {
			end = frames[cut].Off
		}
		out := slices.Clone(c.tr.ApplyBatch(batch[base:end]))
		if cut < len(frames) {
			out = append(out, flush...)
		}
		if len(c.tr.keep) > s.max {
			// By design a batch needing more than max statements overflows
			// the set until a later Add (not undone) brings it back.
			b.overflow = true
		}
		s.logf("c%d -> b%d: %s (cut %d of %d, %d..%d)", c.id, c.held, describeStream(s.t, out), cut, len(frames), base, end)
		from := len(b.m.log)
		b.m.feed(out)
		stamp(b.m.log, from, c)
		if cut == len(frames) {
			return
		}
		if c.tr.Pending() == 0 {
			var q []string
			for _, e := range c.tr.q {
				q = append(q, fmt.Sprintf("%c/%d", e.typ, e.grp))
			}
			s.t.Fatalf("c%d: %q waits for answers with none awaited %v (group %d)\ntrace:\n  %s", c.id, frames[cut].Type, q, c.tr.group, strings.Join(s.trace, "\n  "))
		}
		s.logf("c%d waits for answers", c.id)
		if !s.feedAnswers(c, 1<<20) {
			return
		}
		frames, base = frames[cut:], end
	}
}

func (s *sim) attach(c *simClient, pref int) {
	for i := range s.backends {
		k := (pref + i) % len(s.backends)
		if b := s.backends[k]; b.owner < 0 {
			b.owner, c.held, c.status = c.id, k, 'I'
			c.tr.Attach(b.set)
			s.logf("c%d leases b%d", c.id, k)
			return
		}
	}
	s.t.Fatalf("no free backend")
}

// chunkReader hands out data size bytes at a time.
type chunkReader struct {
	data []byte
	size int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data[:min(r.size, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

// receive passes what the client's backend answered through its Tracker,
// read chunk bytes at a time, compares the client's two streams, checks
// the books, and ends the lease at a ReadyForQuery 'I' answering the
// client's last message.
func (s *sim) receive(ci, chunk int) {
	c := s.clients[ci]
	if s.stopped() {
		return
	}
	if c.held >= 0 && !s.feedAnswers(c, chunk) {
		return
	}
	s.compare(c)
	s.invariants(c)
	if s.stopped() {
		return
	}
	if c.repair {
		s.repair(c)
	}
	c.round++
	c.deferredFailed, c.repair = false, false
	if c.held < 0 {
		return
	}
	b := s.backends[c.held]
	if c.status == 'I' && (c.lastSent == 'S' || c.lastSent == 'Q') && !b.m.skip {
		b.owner = -1
		s.logf("c%d releases b%d", ci, c.held)
		c.held = -1
	}
}

func (s *sim) feedAnswers(c *simClient, chunk int) bool {
	ans := s.backends[c.held].m.take()
	rd := wire.NewReader(&chunkReader{data: ans, size: chunk}, wire.DefaultBufferSize, 1<<20)
	for len(ans) > 0 {
		c.tr.BeginAnswers()
		for {
			f, ok, err := rd.Next()
			if err != nil {
				s.t.Fatalf("framing answers: %v", err)
			}
			if !ok {
				break
			}
			if err := c.tr.Server(f.Type, f.Body, f.Off); err != nil {
				s.problem(c, "c%d: Server(%q): %v", c.id, f.Type, err)
				s.known = "the connection is closed after: " + s.explain(c)
				return false
			}
			if f.Type == 'Z' {
				c.status = f.Body[0]
			}
		}
		c.got = append(c.got, c.tr.ApplyAnswers(rd.Take())...)
		if rd.Fill() != nil {
			break
		}
	}
	return true
}

func describeStream(t testing.TB, b []byte) string {
	var parts []string
	for _, m := range splitMessages(t, b) {
		parts = append(parts, frontendString(m))
	}
	return strings.Join(parts, " ")
}

func frontendString(m backendMessage) string {
	switch m.typ {
	case 'P':
		p, _ := DecodeParse(m.body)
		return fmt.Sprintf("P(%s,%q,%d)", p.Name, p.Query, (len(p.ParamTypes)-2)/4)
	case 'B':
		name, _, _, _ := BindStatement(m.body)
		return fmt.Sprintf("B(%s)", name)
	case 'D', 'C':
		kind, name, _ := Target(m.body)
		return fmt.Sprintf("%c%c(%s)", m.typ, kind, name)
	case 'Q':
		return fmt.Sprintf("Q(%q)", strings.TrimSuffix(string(m.body), "\x00"))
	}
	return string(m.typ)
}

// compare checks that the client saw the same answers both ways.
func (s *sim) compare(c *simClient) {
	want, got := splitMessages(s.t, c.want), splitMessages(s.t, c.got)
	s.logf("c%d dedicated: %v", c.id, want)
	s.logf("c%d pgvalve:   %v", c.id, got)
	for i := 0; i < max(len(want), len(got)); i++ {
		if i < len(want) && i < len(got) && want[i].typ == got[i].typ && bytes.Equal(want[i].body, got[i].body) {
			continue
		}
		s.problem(c, "c%d: answer %d differs: dedicated %v, through pgvalve %v", c.id, i, want, got)
		break
	}
	c.want, c.got = c.want[:0], c.got[:0]
}

// invariants checks the Tracker's books against the backends once every
// answer to what the client sent is in.
func (s *sim) invariants(c *simClient) {
	if s.stopped() {
		return
	}
	if !sameStatements(c.tr.reg.m, c.ded.stmts) {
		s.problem(c, "c%d: registry %v, dedicated server %v", c.id, slices.Sorted(maps.Keys(c.tr.reg.m)), slices.Sorted(maps.Keys(c.ded.stmts)))
	}
	if u, d := c.tr.reg.unnamed, c.ded.unnamed; (u == nil) != (d == nil) || u != nil && !sameStatement(u, d) {
		s.problem(c, "c%d: registry's unnamed statement %+v, dedicated server's %+v", c.id, u, d)
	}
	if c.held < 0 {
		return
	}
	b := s.backends[c.held]
	if (c.lastSent == 'S' || c.lastSent == 'Q') && !b.m.skip {
		if n := c.tr.Pending(); n != 0 {
			s.problem(c, "c%d: %d answers pending at ReadyForQuery", c.id, n)
			s.known = "the queue is out of step after: " + s.explain(c)
			return
		}
		if c.status != c.ded.status() {
			s.problem(c, "c%d: status %c, dedicated server %c", c.id, c.status, c.ded.status())
		}
	}
	held, set := slices.Sorted(maps.Keys(b.m.stmts)), slices.Sorted(maps.Keys(b.set.m))
	if b.set.unsure {
		// After a statement went missing the books are pessimistic: they
		// list only what the server surely holds.
		for _, name := range set {
			if _, ok := b.m.stmts[name]; !ok {
				s.problem(c, "b%d holds %v, its unsure ServerSet says %v", c.held, held, set)
			}
		}
	} else if !slices.Equal(held, set) {
		s.problem(c, "b%d holds %v, its ServerSet says %v", c.held, held, set)
	}
	if b.set.Len() <= s.max {
		b.overflow = false
	} else if !b.overflow && !failedIn(b.m.log, c) {
		// Only a batch needing more than max statements, or messages
		// rewritten before an earlier one failed (evictions skipped), may
		// leave the set over max until its next Add.
		s.problem(c, "b%d: ServerSet holds %d, over its max %d", c.held, b.set.Len(), s.max)
	} else {
		b.overflow = true
	}
	// "" must mean none: a client without an unnamed statement would
	// otherwise reach another client's.
	if u := b.set.unnamed; (u == "") != (b.m.unnamed == nil) || u != "" && modelServerName(b.m.unnamed) != u {
		s.problem(c, "b%d: ServerSet says the unnamed statement is %q, the backend has %+v", c.held, u, b.m.unnamed)
	}
}

// failedIn reports whether a message client c sent this round failed or
// was skipped.
func failedIn(log []modelEvent, c *simClient) bool {
	for _, ev := range log {
		if ev.who == c.id && ev.round == c.round && (ev.skipped || ev.code != "") {
			return true
		}
	}
	return false
}

func modelServerName(st *modelStmt) string { return ServerName(st.query, paramTypes(st.params...)) }

// sameStatements compares a registry with a dedicated server's statements.
func sameStatements(reg map[string]*Statement, ded map[string]*modelStmt) bool {
	if len(reg) != len(ded) {
		return false
	}
	for name, st := range reg {
		d, ok := ded[name]
		if !ok || !sameStatement(st, d) {
			return false
		}
	}
	return true
}

// sameStatement compares a client's statement with a dedicated server's.
func sameStatement(st *Statement, d *modelStmt) bool {
	return st.Query == d.query && bytes.Equal(st.ParamTypes, paramTypes(d.params...))
}
