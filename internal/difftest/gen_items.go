package difftest

import (
	"fmt"
)

// Item kinds, in the order of their weights in items.
const (
	itemSimple = iota
	itemMulti
	itemExtended
	itemPipeline
	itemTx
	itemCopyIn
	itemCopyInExtended
	itemCopyOut
	itemNotice
	itemSetting
	itemFunction
	itemDealloc
	itemBig
	itemReshape
	itemClose
	itemFlush   // a whole batch: ends with Flush
	itemPrepare // a whole batch: only Parse and Sync
	itemKinds
)

// items fills a batch with one to three items, like a client that
// pipelines requests.
func (b *builder) items() {
	for i := range 1 + b.g.ch.IntN(3) {
		k := pick(b.g.ch, b.weights(i == 0)...)
		b.item(k)
		if k == itemFlush || k == itemPrepare || b.c.failed || b.c.open {
			return
		}
	}
}

// weights says how often each item kind is drawn, 0 where the profile or
// the client's state rules it out. first: the batch is still empty.
func (b *builder) weights(first bool) []int {
	p := b.g.p
	w := make([]int, itemKinds)
	w[itemSimple], w[itemMulti], w[itemExtended], w[itemPipeline] = 12, 6, 14, 10
	w[itemCopyIn], w[itemCopyInExtended], w[itemCopyOut] = 4, 3, 3
	w[itemNotice], w[itemSetting], w[itemDealloc], w[itemBig] = 3, 6, 5, 12
	if p.Transactions {
		w[itemTx] = 10
	}
	if b.g.o.Int4pl != 0 {
		w[itemFunction] = 2
	}
	if !b.g.busy() {
		w[itemReshape] = 2
	}
	if p.Named {
		w[itemClose] = 3
	}
	if first {
		w[itemFlush] = 3
		if p.Named {
			w[itemPrepare] = 4
		}
	}
	return w
}

func (b *builder) item(k int) {
	switch k {
	case itemSimple:
		b.note("query")
		b.query(b.plainSQL(chance(b.g.ch, 5)))
	case itemMulti:
		b.multiQuery()
	case itemExtended:
		b.extendedRequest()
	case itemPipeline:
		b.pipeline()
	case itemTx:
		b.transaction()
	case itemCopyIn:
		b.copyIn()
	case itemCopyInExtended:
		b.copyInExtended()
	case itemCopyOut:
		b.copyOut()
	case itemNotice:
		b.notice()
	case itemSetting:
		b.setting()
	case itemFunction:
		b.function()
	case itemDealloc:
		b.dealloc()
	case itemBig:
		b.big()
	case itemReshape:
		b.reshape()
	case itemClose:
		b.closeSome()
	case itemFlush:
		b.flushed()
	case itemPrepare:
		b.prepareOnly()
	}
}

// multiQuery is one Query of several statements; an error stops the rest.
func (b *builder) multiQuery() {
	n := 2 + b.g.ch.IntN(3)
	stmts := make([]sqlStmt, n)
	for i := range stmts {
		stmts[i] = b.plainSQL(chance(b.g.ch, 6))
	}
	if chance(b.g.ch, 6) {
		// A syntax error anywhere stops the whole string before it runs.
		stmts[b.g.ch.IntN(n)] = badSQL("SELEC 1")
		stmts = []sqlStmt{{text: joinSQL(stmts), fails: true}}
	}
	b.note("query of %d statements", n)
	b.query(stmts...)
}

func joinSQL(stmts []sqlStmt) string {
	s := ""
	for i, st := range stmts {
		if i > 0 {
			s += "; "
		}
		s += st.text
	}
	return s
}

// pickStmt chooses a statement name to run tmpl under: the unnamed one,
// or (where the profile allows) a fresh name.
func (b *builder) pickName() string {
	if b.g.p.Named && chance(b.g.ch, 2) {
		return b.c.name()
	}
	return ""
}

// extendedRequest prepares (or reuses) a statement, binds and runs it, with
// optional Describes, a row limit and a Flush, then Sync.
func (b *builder) extendedRequest() {
	ch := b.g.ch
	name, s := b.reusable()
	if s == nil {
		t := goodTmpls[ch.IntN(len(goodTmpls))]
		name, s = b.pickName(), b.newStmt(t)
		b.parse(name, s)
	}
	if chance(ch, 3) {
		b.describe('S', name)
	}
	args, fails := s.t.args(b, chance(ch, 5))
	b.bind("", name, args, fails)
	if chance(ch, 3) {
		b.describe('P', "")
	}
	limit := 0
	if chance(ch, 3) {
		limit = 1 + ch.IntN(3)
	}
	for i := 0; i < 4 && b.execute("", limit); i++ {
		if chance(ch, 4) {
			b.add(Flush())
		}
	}
	b.note("extended %q on %q limit %d", name, s.t.sql, limit)
	b.sync()
}

// reusable returns one of the client's statements to run again, or nil:
// running a statement prepared in an earlier batch is what pgvalve's
// tracking has to get right across servers.
func (b *builder) reusable() (string, *stmt) {
	if len(b.c.names) > 0 && chance(b.g.ch, 2) {
		name := b.anyName()
		if s := b.c.names[name]; s != nil {
			return name, s
		}
	}
	if b.c.unnamed != nil && chance(b.g.ch, 3) {
		return "", b.c.unnamed
	}
	return "", nil
}

// pipeline sends several Sync groups at once, some failing on purpose, to
// check that PostgreSQL's skipping after an error is mirrored.
func (b *builder) pipeline() {
	n := 2 + b.g.ch.IntN(3)
	for range n {
		b.group()
		b.sync()
	}
	b.note("pipeline of %d groups", n)
}

// group is one Sync group of a pipeline, without its Sync.
func (b *builder) group() {
	ch := b.g.ch
	k := ch.IntN(9)
	if k == 0 && !b.g.p.Named {
		k = 8
	}
	switch k {
	case 0: // a duplicate name fails; what follows is skipped
		name := b.anyName()
		b.parse(name, b.newStmt(tableFreeTmpls[ch.IntN(len(tableFreeTmpls))]))
		b.parse(b.pickName(), b.newStmt(tmplPlusOne))
	case 1: // Bind to a statement nobody prepared
		b.bind("", fmt.Sprintf("never_%d", ch.IntN(9)), nil, 0)
	case 2: // unnamed: a batch of only named Parse and Sync may be deferred
		b.parse("", b.newStmt(oneOf(ch, tmplNoTbl, tmplSyntax)))
		b.bind("", "", nil, 0)
	case 3: // a wrong number of parameters
		name := b.pickName()
		b.parse(name, b.newStmt(tmplPlusOne))
		b.bind("", name, nil, 0)
		b.execute("", 0)
	case 4: // a named portal read in pieces
		s := b.newStmt(tmplSeries)
		b.parse("", s)
		args, _ := s.t.args(b, false)
		b.bind("pt", "", args, 0)
		for i := 0; i < 5 && b.execute("pt", 1+ch.IntN(3)); i++ {
		}
		b.close('P', "pt")
	default: // a statement run with arguments that may fail
		name, s := b.reusable()
		if s == nil {
			name, s = b.pickName(), b.newStmt(goodTmpls[ch.IntN(len(goodTmpls))])
			b.parse(name, s)
		}
		args, fails := s.t.args(b, chance(ch, 3))
		b.bind("", name, args, fails)
		b.describe('P', "")
		b.execute("", 0)
	}
}

// transaction opens, works in, or ends an explicit block.
func (b *builder) transaction() {
	ch := b.g.ch
	if !b.c.inTx {
		b.note("begin")
		b.run(beginSQL())
		return
	}
	var s sqlStmt
	switch ch.IntN(7) {
	case 0:
		s = endSQL("COMMIT")
	case 1:
		s = endSQL("ROLLBACK")
	case 2:
		s = b.savepointSQL()
	case 3:
		s = b.rollbackToSQL()
	case 4:
		s = b.releaseSQL()
	default:
		s = b.plainSQL(chance(ch, 3)) // an error fails the block
	}
	b.note("in a block: %s", s.text)
	b.run(s)
}

// run sends one statement as a simple Query or through the extended
// protocol (unnamed statement, Bind, Execute, Sync).
func (b *builder) run(s sqlStmt) {
	if chance(b.g.ch, 2) {
		b.query(s)
		return
	}
	b.extStmt(s)
	b.sync()
}

// extStmt is s through the unnamed statement, without Sync. In a failed
// block PostgreSQL still parses, binds and runs transaction control.
func (b *builder) extStmt(s sqlStmt) {
	if b.extended(Parse("", s.text)) {
		b.c.unnamed = nil // one the generator does not reuse
		if b.c.failed && !s.txControl {
			b.failed = true
		}
	}
	if b.extended(Bind("", "")) {
		b.c.portals[""] = &portal{}
	}
	if b.extended(Execute("", 0)) {
		if s.fails {
			b.failed = true
		} else if s.effect != nil {
			s.effect(b.c)
		}
	}
}

// recover is the step of a client whose block failed: more failing
// statements, or a way out.
func (b *builder) recover() {
	k := b.g.ch.IntN(6)
	if k == 2 && b.c.saves == 0 {
		k = 3
	}
	switch k {
	case 0:
		b.note("query in a failed block")
		b.query(okSQL("SELECT 1"))
	case 1:
		b.note("extended statement in a failed block")
		b.extStmt(okSQL("SELECT 2"))
		b.sync()
	case 2:
		b.note("rollback to savepoint after an error")
		b.run(b.rollbackToSQL())
	case 3:
		b.note("commit of a failed block")
		b.run(endSQL("COMMIT"))
	default:
		b.note("rollback of a failed block")
		b.run(endSQL("ROLLBACK"))
	}
}

// notice raises NOTICE and WARNING messages from a DO block.
func (b *builder) notice() {
	n := b.g.ch.IntN(4)
	do := fmt.Sprintf("DO $$ BEGIN FOR i IN 1..%d LOOP RAISE NOTICE 'notice %%', i; END LOOP; RAISE WARNING 'careful'; END $$", n)
	b.note("%d notices", n)
	b.run(okSQL(do))
}

func (b *builder) setting() {
	s := b.settingSQL()
	b.note("setting %q", s.text)
	b.run(s)
}

// function calls int4pl with the FunctionCall message; an overflow fails.
func (b *builder) function() {
	args := []string{fmt.Sprint(b.g.ch.IntN(100)), "3"}
	fails := chance(b.g.ch, 4)
	if fails {
		args[0] = "2147483647"
	}
	b.add(FunctionCall(b.g.o.Int4pl, args...))
	b.ready++
	b.note("function call int4pl(%s, %s)", args[0], args[1])
	b.runStatements([]sqlStmt{{fails: fails}})
}

// dealloc drops prepared statements with SQL, through a simple Query or
// the extended protocol, or inside a DO block.
func (b *builder) dealloc() {
	ch := b.g.ch
	var s sqlStmt
	switch ch.IntN(6) {
	case 0, 1:
		name := b.anyName()
		_, known := b.c.names[name]
		s = sqlStmt{text: oneOf(ch, "DEALLOCATE ", "DEALLOCATE PREPARE ") + name, fails: !known,
			effect: func(c *client) { delete(c.names, name) }}
	case 2:
		s = sqlStmt{text: "DEALLOCATE ALL", effect: func(c *client) { clear(c.names) }}
	case 3:
		s = sqlStmt{text: "DISCARD ALL", fails: b.c.inTx, effect: func(c *client) { clear(c.names); c.unnamed = nil }}
	case 4:
		s = sqlStmt{text: "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$", effect: func(c *client) { clear(c.names) }}
	default:
		// SQL-level statements live and die within one Query, so they
		// never outlive the server pgvalve ran them on.
		q := fmt.Sprintf("q%d_%d", b.c.id, b.c.nextName)
		b.c.nextName++
		s = okSQL(fmt.Sprintf("PREPARE %s AS SELECT $1::int * 2; EXECUTE %s(21); DEALLOCATE %s", q, q, q))
		b.note("SQL PREPARE, EXECUTE and DEALLOCATE")
		b.query(s)
		return
	}
	b.note("%s", s.text)
	b.run(s)
}

// reshape drops and recreates t_shape with another column type: a
// statement prepared for the old one now fails on PostgreSQL.
func (b *builder) reshape() {
	g := b.g
	g.shape = (g.shape + 1 + g.ch.IntN(len(shapes)-1)) % len(shapes)
	sh := shapes[g.shape]
	b.note("t_shape becomes %s", sh.typ)
	b.query(okSQL(fmt.Sprintf("DROP TABLE t_shape; CREATE TABLE t_shape (v %s); INSERT INTO t_shape VALUES %s", sh.typ, sh.rows)))
}

// closeSome closes statements (known or not) and portals, then Sync.
func (b *builder) closeSome() {
	for range 1 + b.g.ch.IntN(3) {
		if chance(b.g.ch, 4) {
			b.close('P', "")
		} else {
			b.close('S', b.anyName())
		}
	}
	b.note("close")
	b.sync()
}

// flushed runs a portal part way and ends the batch with Flush: the answer
// comes without ReadyForQuery and the request stays open for the client's
// next step.
func (b *builder) flushed() {
	ch := b.g.ch
	rows, limit := 2+ch.IntN(6), 1+ch.IntN(3)
	b.parse("", b.newStmt(&tmpl{sql: fmt.Sprintf("SELECT g FROM generate_series(1, %d) g", rows), args: noArgs,
		rows: func([]string) int { return rows }}))
	b.bind("", "", nil, 0)
	b.extra = 3 + min(rows, limit) // ParseComplete, BindComplete, rows, then PortalSuspended or CommandComplete
	if chance(ch, 2) {
		b.describe('P', "")
		b.extra++
	}
	b.execute("", limit)
	b.add(Flush())
	b.c.open = true
	b.note("flushed portal of %d rows, limit %d", rows, limit)
}

// finishOpen ends the request a Flush left open.
func (b *builder) finishOpen() {
	b.open = true
	b.c.open = false
	switch b.g.ch.IntN(3) {
	case 0:
		b.note("rest of the flushed portal")
		b.execute("", 0)
	case 1:
		b.note("close the flushed portal")
		b.close('P', "")
	default:
		b.note("error after a flush")
		b.parse("", b.newStmt(tmplSyntax))
	}
	b.sync()
}

// prepareOnly is what libpq's PQprepare sends: named Parse and Sync. pgvalve
// may answer it without a server, so only SQL valid whatever the tables
// hold is used; a reused name fails with 42P05 either way.
func (b *builder) prepareOnly() {
	for range 1 + b.g.ch.IntN(2) {
		for range 1 + b.g.ch.IntN(2) {
			name := b.c.name()
			if chance(b.g.ch, 4) {
				name = b.anyName()
			}
			b.parse(name, b.newStmt(tableFreeTmpls[b.g.ch.IntN(len(tableFreeTmpls))]))
		}
		b.sync()
	}
	b.note("prepare only")
}
