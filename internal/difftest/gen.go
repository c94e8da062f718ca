package difftest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Profile says what a pool mode serves, so that the generator makes only
// conversations on whose every answer PostgreSQL and pgvalve must agree.
type Profile struct {
	// Transactions allows explicit transaction blocks; statement pooling
	// refuses them by design.
	Transactions bool
	// Named allows named prepared statements that outlive their batch:
	// pgvalve tracks them in transaction and statement pooling, and without
	// tracking (max_prepared_statements = 0) they stay on whichever server
	// ran the Parse, as in any pooler.
	Named bool
	// Sticky says a client keeps its server between batches (session
	// pooling): the unnamed statement, SQL-level PREPARE and settings that
	// PostgreSQL does not report may then outlive a batch.
	Sticky bool
}

// Options bound the conversations Generate makes.
type Options struct {
	Clients int // most clients in one conversation, at least 1
	Steps   int // most steps before the closing ones, at least 1
	// MaxSize is the largest message the generator sends or asks for, in
	// bytes; sizes are drawn around pgvalve's and PostgreSQL's buffer
	// boundaries up to it.
	MaxSize int
	// Int4pl is the OID of the builtin int4pl for FunctionCall messages;
	// 0 leaves function calls out.
	Int4pl uint32
}

// Conversation is what several clients send, one batch at a time.
type Conversation struct {
	Clients int
	// AppNames are the application_name each client sends in its startup
	// packet; "" or a missing entry sends none.
	AppNames []string
	Steps    []Step
}

// Step is one client's batch and what ends its answer.
type Step struct {
	Client int
	Batch  []Msg
	// Ready is how many ReadyForQuery messages end the answer, Extra how
	// many more messages follow the last of them (a batch that ends with
	// Flush is answered without ReadyForQuery).
	Ready, Extra int
	// Notifies is how many NotificationResponses the answer holds
	// besides: pgvalve delivers them through its shared listening
	// connection, so they may come after the ReadyForQuery that PostgreSQL
	// sends them before. Such a step's notifications are compared apart
	// from its other messages (see Reorder).
	Notifies int
	// Cuts are the byte offsets at which the batch is split into separate
	// writes; Pause sleeps briefly between them so that the reader on the
	// other side sees the pieces apart.
	Cuts  []int
	Pause bool
	// What the generator meant, for reports.
	What string
}

// stmt is a prepared statement as PostgreSQL holds it for one client.
type stmt struct {
	t     *tmpl
	shape int // t_shape's column type when prepared; -1 when it does not read t_shape
}

// portal is an open portal and what its next Execute does.
type portal struct {
	rows  int  // rows still to come, when the generator counts them
	fails bool // its Execute fails (division by zero, duplicate key)
	dml   bool // see tmpl.dml
	done  bool // a dml portal that ran
}

// client is the generator's model of one client's session, as PostgreSQL
// sees it.
type client struct {
	id        int
	names     map[string]*stmt // named statements
	unnamed   *stmt            // the unnamed statement, while the generator may use it
	portals   map[string]*portal
	inTx      bool // inside an explicit transaction block
	failed    bool // that block failed: only ROLLBACK helps
	saves     int  // savepoints in the block
	open      bool // its last batch ended with Flush: the request is still open
	nextName  int
	nextID    int
	committed []int // t_items ids it committed outside any block
	pending   []int // ids inserted by the Query being built, committed if it succeeds outside a block
}

// gen builds one conversation.
type gen struct {
	ch    Chooser
	p     Profile
	o     Options
	cs    []*client
	shape int // index into shapes of t_shape's column type now
	steps []Step
}

// Generate makes a conversation from ch's choices. It is deterministic:
// the same choices make the same conversation.
func Generate(ch Chooser, p Profile, o Options) Conversation {
	o.Clients, o.Steps = max(o.Clients, 1), max(o.Steps, 1)
	g := &gen{ch: ch, p: p, o: o}
	n := 1 + ch.IntN(o.Clients)
	apps := make([]string, n)
	for i := range n {
		g.cs = append(g.cs, &client{id: i, names: map[string]*stmt{}, portals: map[string]*portal{}})
		if chance(ch, 2) {
			apps[i] = fmt.Sprintf("difftest_%d", i)
		}
	}
	for range 1 + ch.IntN(o.Steps) {
		g.step(g.cs[ch.IntN(n)])
	}
	for _, c := range g.cs {
		if c.open || c.inTx {
			g.step(c) // finishes the open request or block
		}
		if c.inTx {
			g.step(c)
		}
	}
	return Conversation{Clients: n, AppNames: apps, Steps: g.steps}
}

// builder assembles one batch and keeps the client's model in step with
// what PostgreSQL will do with each message.
type builder struct {
	g      *gen
	c      *client
	msgs   []Msg
	ready  int
	extra  int
	open   bool // an extended-protocol request is open (no Sync since its first message)
	failed bool // it failed: PostgreSQL skips its messages up to Sync
	what   []string
}

// step adds one batch for client c.
func (g *gen) step(c *client) {
	b := &builder{g: g, c: c}
	switch {
	case c.open:
		b.finishOpen()
	case c.failed:
		b.recover()
	default:
		b.items()
	}
	if !g.p.Sticky && !c.inTx && !c.open {
		c.unnamed = nil // its next batch may run on another server
	}
	st := Step{Client: c.id, Batch: b.msgs, Ready: b.ready, Extra: b.extra, What: strings.Join(b.what, "; ")}
	st.Cuts, st.Pause = g.cuts(b.msgs)
	g.steps = append(g.steps, st)
}

// cuts picks where to split a batch's bytes: anywhere, and often right
// around a message boundary or inside a header.
func (g *gen) cuts(batch []Msg) ([]int, bool) {
	total := 0
	var bounds []int
	for _, m := range batch {
		total += m.Size()
		bounds = append(bounds, total)
	}
	if total < 2 {
		return nil, false
	}
	var cuts []int
	for range g.ch.IntN(5) {
		at := 1 + g.ch.IntN(total-1)
		if chance(g.ch, 2) {
			at = bounds[g.ch.IntN(len(bounds))] - 3 + g.ch.IntN(7)
		}
		if at > 0 && at < total {
			cuts = append(cuts, at)
		}
	}
	slices.Sort(cuts)
	return slices.Compact(cuts), len(cuts) > 0 && chance(g.ch, 3)
}

func (b *builder) note(format string, args ...any) {
	b.what = append(b.what, fmt.Sprintf(format, args...))
}

func (b *builder) add(m Msg) { b.msgs = append(b.msgs, m) }

// extended adds an extended-protocol message and reports whether
// PostgreSQL runs it (false: skipped after an earlier error).
func (b *builder) extended(m Msg) bool {
	b.add(m)
	b.open = true
	return !b.failed
}

// runs is extended for Parse, Bind, Describe and Execute of anything but
// transaction control: in a failed block PostgreSQL refuses them (25P02).
func (b *builder) runs(m Msg) bool {
	if !b.extended(m) {
		return false
	}
	if b.c.failed {
		b.failed = true
		return false
	}
	return true
}

func (b *builder) parse(name string, s *stmt) {
	if !b.runs(Parse(name, s.t.sql, s.t.oids...)) {
		return
	}
	if name == "" {
		b.c.unnamed = nil // dropped before the new one is parsed
	}
	if _, dup := b.c.names[name]; s.t.parseErr || name != "" && dup {
		b.failed = true
		return
	}
	if name == "" {
		b.c.unnamed = s
	} else {
		b.c.names[name] = s
	}
}

// lookup is the statement name refers to, nil when there is none.
func (b *builder) lookup(name string) *stmt {
	if name == "" {
		return b.c.unnamed
	}
	return b.c.names[name]
}

// bind binds statement name to portal with args from the statement's
// template (bad ones when bad is true).
func (b *builder) bind(portalName, name string, args []string, fails byte) {
	if !b.runs(Bind(portalName, name, args...)) {
		return
	}
	s := b.lookup(name)
	_, dup := b.c.portals[portalName]
	if s == nil || len(args) != s.t.params || fails == 'B' || s.stale(b.g) || portalName != "" && dup {
		b.failed = true
		return
	}
	b.c.portals[portalName] = &portal{rows: s.t.rowsFor(args), fails: fails == 'E', dml: s.t.dml}
}

func (s *stmt) stale(g *gen) bool { return s.shape >= 0 && s.shape != g.shape }

func (b *builder) describe(kind byte, name string) {
	if !b.runs(Describe(kind, name)) {
		return
	}
	if kind == 'S' && b.lookup(name) == nil || kind == 'P' && b.c.portals[name] == nil {
		b.failed = true
	}
}

// execute runs portal for at most max rows and reports whether it is left
// suspended with rows to come.
func (b *builder) execute(portalName string, max int) bool {
	if !b.runs(Execute(portalName, uint32(max))) {
		return false
	}
	p := b.c.portals[portalName]
	if p == nil || p.fails || p.done {
		b.failed = true
		return false
	}
	if p.dml {
		p.done = true
		return false
	}
	if max > 0 && p.rows >= max {
		p.rows -= max // PostgreSQL suspends at the limit even when no row is left
		return true
	}
	p.rows = 0
	return false
}

func (b *builder) close(kind byte, name string) {
	if !b.extended(Close(kind, name)) {
		return
	}
	switch {
	case kind == 'P':
		delete(b.c.portals, name)
	case name == "":
		b.c.unnamed = nil
	default:
		delete(b.c.names, name)
	}
}

// sync ends the extended-protocol request.
func (b *builder) sync() {
	b.add(Sync())
	b.ready++
	if b.failed && b.c.inTx {
		b.c.failed = true
	}
	b.failed, b.open = false, false
	if !b.c.inTx {
		clear(b.c.portals) // the implicit transaction ended
	}
	b.c.pending = b.c.pending[:0]
}

// query sends a simple Query of statements; only outside an open
// extended-protocol request, where PostgreSQL would skip it.
func (b *builder) query(stmts ...sqlStmt) {
	if b.open {
		panic("difftest: Query inside an open extended-protocol request")
	}
	texts := make([]string, len(stmts))
	for i, s := range stmts {
		texts[i] = s.text
	}
	b.add(Query(strings.Join(texts, "; ")))
	b.ready++
	b.afterQuery(b.runStatements(stmts))
}

// afterQuery applies what a simple Query (or FunctionCall) does besides
// its statements: it drops the unnamed statement and portal, and ends its
// implicit transaction.
func (b *builder) afterQuery(ok bool) {
	b.c.unnamed = nil
	delete(b.c.portals, "")
	if !b.c.inTx {
		clear(b.c.portals)
		if ok {
			b.c.committed = append(b.c.committed, b.c.pending...)
		}
	}
	b.c.pending = b.c.pending[:0]
}

// runStatements applies what statements do, as PostgreSQL runs them one
// after another until one fails, and reports whether all ran.
func (b *builder) runStatements(stmts []sqlStmt) bool {
	for _, s := range stmts {
		if b.c.failed && !s.txControl || s.fails {
			if b.c.inTx {
				b.c.failed = true
			}
			return false
		}
		if s.effect != nil {
			s.effect(b.c)
		}
	}
	return true
}

// sqlStmt is one SQL statement of a simple Query (or of a Parse whose
// effect happens at Execute) and what it does to the client's session.
type sqlStmt struct {
	text      string
	fails     bool
	txControl bool // runs in a failed block (ROLLBACK, COMMIT, ROLLBACK TO)
	effect    func(*client)
}

// name returns a statement name the client never used.
func (c *client) name() string {
	c.nextName++
	return fmt.Sprintf("s%d_%d", c.id, c.nextName)
}

// freshID is a t_items id no client ever used: each client has its own
// range, so clients never wait on each other's row locks.
func (c *client) freshID() int {
	c.nextID++
	return (c.id+1)*1_000_000 + c.nextID
}

// anyName returns one of the client's statement names, or a fresh one.
func (b *builder) anyName() string {
	if len(b.c.names) > 0 && !chance(b.g.ch, 4) {
		names := slices.Sorted(maps.Keys(b.c.names))
		return names[b.g.ch.IntN(len(names))]
	}
	return b.c.name()
}

// busy reports whether any client holds a transaction open (a block, or
// a request left open by Flush): DDL would wait for its locks.
func (g *gen) busy() bool {
	for _, c := range g.cs {
		if c.inTx || c.open {
			return true
		}
	}
	return false
}
