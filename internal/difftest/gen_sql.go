package difftest

import (
	"fmt"
	"strconv"
)

// Schema creates the tables every conversation starts from. Both databases
// get it before each conversation, so their answers can be equal. Only
// deterministic SQL runs against it: no now(), random(), pids or OIDs.
const Schema = `DROP TABLE IF EXISTS t_items, t_copy, t_shape;
CREATE TABLE t_items (id int PRIMARY KEY, note text);
INSERT INTO t_items SELECT g, 'seed ' || g FROM generate_series(1, 5) g;
CREATE TABLE t_copy (a int, b text);
CREATE TABLE t_shape (v int);
INSERT INTO t_shape VALUES (1), (2);`

// shapes are the column types t_shape cycles through; the first is
// Schema's. A statement prepared for one type fails with 0A000 on
// PostgreSQL once the table has another.
var shapes = []struct{ typ, rows string }{
	{"int", "(1), (2)"},
	{"text", "('a'), ('b')"},
	{"numeric(6,2)", "(1.50)"},
}

// tmpl is a statement the generator prepares, with the arguments it binds.
type tmpl struct {
	sql    string
	oids   []uint32
	params int
	// tableFree: valid whatever the tables hold, so fit for a batch of only
	// Parse and Sync, which pgvalve may answer without a server (errors in
	// its text would surface at first use there, at Parse here).
	tableFree bool
	parseErr  bool // PostgreSQL refuses it at Parse
	shape     bool // reads t_shape
	// dml: an INSERT or UPDATE, whose Execute ignores the row limit and
	// leaves the portal done: running it again fails.
	dml bool
	// args returns arguments for a Bind and the message that fails with
	// them: 0, 'B' (Bind) or 'E' (Execute). bad asks for failing ones
	// where the statement has any.
	args func(b *builder, bad bool) ([]string, byte)
	// rows says how many rows a portal bound with args yields.
	rows func(args []string) int
}

func (t *tmpl) rowsFor(args []string) int {
	if t.rows == nil {
		return 1
	}
	return t.rows(args)
}

func noArgs(*builder, bool) ([]string, byte) { return nil, 0 }

var (
	tmplPlusOne = &tmpl{sql: "SELECT $1::int + 1", params: 1, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) {
			if bad {
				return []string{"abc"}, 'B'
			}
			return []string{strconv.Itoa(b.g.ch.IntN(1000))}, 0
		}}
	tmplTyped = &tmpl{sql: "SELECT $1 * 2", oids: []uint32{23}, params: 1, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) {
			if bad {
				return []string{"2147483647"}, 'E' // integer out of range
			}
			return []string{strconv.Itoa(b.g.ch.IntN(1000))}, 0
		}}
	tmplBang = &tmpl{sql: "SELECT $1::text || '!'", params: 1, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) { return []string{fmt.Sprintf("t%d", b.g.ch.IntN(100))}, 0 }}
	tmplDivide = &tmpl{sql: "SELECT 10 / $1::int", params: 1, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) {
			if bad {
				return []string{"0"}, 'E' // division by zero
			}
			return []string{oneOf(b.g.ch, "1", "2", "5")}, 0
		}}
	tmplSeries = &tmpl{sql: "SELECT g, repeat('r', g) FROM generate_series(1, $1::int) g", params: 1, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) { return []string{strconv.Itoa(1 + b.g.ch.IntN(9))}, 0 },
		rows: func(args []string) int { n, _ := strconv.Atoi(args[0]); return n }}
	tmplValues = &tmpl{sql: "VALUES (1, 'one'), (2, 'two'), (3, 'three')", tableFree: true, args: noArgs,
		rows: func([]string) int { return 3 }}
	tmplPair = &tmpl{sql: "SELECT $1::int AS a, $2::text AS b", params: 2, tableFree: true,
		args: func(b *builder, bad bool) ([]string, byte) { return []string{"7", "seven"}, 0 }}
	tmplItem = &tmpl{sql: "SELECT id, note FROM t_items WHERE id = $1", params: 1,
		args: func(b *builder, bad bool) ([]string, byte) { return []string{strconv.Itoa(b.someID())}, 0 }}
	tmplInsert = &tmpl{sql: "INSERT INTO t_items (id, note) VALUES ($1, $2)", params: 2, dml: true,
		args: func(b *builder, bad bool) ([]string, byte) {
			if bad && len(b.c.committed) > 0 {
				return []string{strconv.Itoa(b.c.committed[0]), "dup"}, 'E' // duplicate key
			}
			return []string{strconv.Itoa(b.c.freshID()), "ext"}, 0
		}}
	tmplUpdate = &tmpl{sql: "UPDATE t_items SET note = $2 WHERE id = $1", params: 2, dml: true,
		args: func(b *builder, bad bool) ([]string, byte) { return []string{strconv.Itoa(b.someID()), "upd"}, 0 }}
	tmplCount  = &tmpl{sql: "SELECT count(*) FROM t_items", args: noArgs}
	tmplCopied = &tmpl{sql: "SELECT a, b FROM t_copy ORDER BY a, b LIMIT 3", args: noArgs}
	tmplShape  = &tmpl{sql: "SELECT * FROM t_shape ORDER BY 1", shape: true, args: noArgs}
	tmplNoTbl  = &tmpl{sql: "SELECT * FROM t_missing", parseErr: true, args: noArgs}
	tmplSyntax = &tmpl{sql: "SELEC 1", parseErr: true, args: noArgs}
)

// goodTmpls may be prepared and run; tableFreeTmpls also in a batch of
// only Parse and Sync.
var (
	goodTmpls      = []*tmpl{tmplPlusOne, tmplTyped, tmplBang, tmplDivide, tmplSeries, tmplValues, tmplPair, tmplItem, tmplInsert, tmplUpdate, tmplCount, tmplCopied, tmplShape}
	tableFreeTmpls = []*tmpl{tmplPlusOne, tmplTyped, tmplBang, tmplDivide, tmplSeries, tmplValues, tmplPair}
)

// someID is a t_items id the client committed (an UPDATE of it never
// waits on another client), or a fresh one.
func (b *builder) someID() int {
	if len(b.c.committed) > 0 && !chance(b.g.ch, 3) {
		return b.c.committed[b.g.ch.IntN(len(b.c.committed))]
	}
	return b.c.freshID()
}

// newStmt is a statement for t as PostgreSQL would plan it now.
func (b *builder) newStmt(t *tmpl) *stmt {
	s := &stmt{t: t, shape: -1}
	if t.shape {
		s.shape = b.g.shape
	}
	return s
}

// Statements of simple Queries.

func okSQL(text string) sqlStmt  { return sqlStmt{text: text} }
func badSQL(text string) sqlStmt { return sqlStmt{text: text, fails: true} }

// plainSQL is a statement that reads or writes only the client's own rows,
// failing when bad.
func (b *builder) plainSQL(bad bool) sqlStmt {
	ch := b.g.ch
	if bad {
		switch ch.IntN(5) {
		case 0:
			return badSQL("SELECT 1 / 0")
		case 1:
			return badSQL("SELECT * FROM t_missing")
		case 2:
			return badSQL("SELECT 'abc'::int")
		case 3:
			if len(b.c.committed) > 0 {
				return badSQL(fmt.Sprintf("INSERT INTO t_items (id, note) VALUES (%d, 'dup')", b.c.committed[0]))
			}
		}
		return badSQL("SELECT nope FROM t_items")
	}
	switch ch.IntN(8) {
	case 0:
		return okSQL("SELECT 1")
	case 1:
		return okSQL(fmt.Sprintf("SELECT g, 'row ' || g FROM generate_series(1, %d) g", 1+ch.IntN(6)))
	case 2:
		return b.insertSQL("'q'")
	case 3:
		return okSQL(fmt.Sprintf("UPDATE t_items SET note = note || '+' WHERE id = %d", b.someID()))
	case 4:
		return okSQL(fmt.Sprintf("DELETE FROM t_items WHERE id = %d", b.c.freshID()))
	case 5:
		return okSQL("SELECT count(*), max(id) < 1000000 FROM t_items")
	case 6:
		return okSQL("SELECT * FROM t_shape ORDER BY 1")
	}
	return okSQL("SELECT a, b FROM t_copy ORDER BY a, b LIMIT 3")
}

// insertSQL inserts a fresh row with note; the id counts as committed
// once the Query succeeds outside a block.
func (b *builder) insertSQL(note string) sqlStmt {
	id := b.c.freshID()
	return sqlStmt{text: fmt.Sprintf("INSERT INTO t_items (id, note) VALUES (%d, %s)", id, note),
		effect: func(c *client) { c.pending = append(c.pending, id) }}
}

// Transaction control.

func beginSQL() sqlStmt {
	return sqlStmt{text: "BEGIN", effect: func(c *client) {
		if !c.inTx {
			c.inTx, c.saves = true, 0
		}
	}}
}

// endSQL is COMMIT or ROLLBACK; COMMIT of a failed block rolls it back.
func endSQL(text string) sqlStmt {
	return sqlStmt{text: text, txControl: true, effect: func(c *client) {
		c.inTx, c.failed, c.saves = false, false, 0
		clear(c.portals)
	}}
}

func (b *builder) savepointSQL() sqlStmt {
	n := b.c.saves + 1
	return sqlStmt{text: fmt.Sprintf("SAVEPOINT sp%d", n), fails: !b.c.inTx, effect: func(c *client) { c.saves = n }}
}

// rollbackToSQL rolls back to the client's latest savepoint, which also
// ends a failure after it.
func (b *builder) rollbackToSQL() sqlStmt {
	n := b.c.saves
	return sqlStmt{text: fmt.Sprintf("ROLLBACK TO SAVEPOINT sp%d", max(n, 1)), txControl: true, fails: n == 0,
		effect: func(c *client) { c.failed = false }}
}

func (b *builder) releaseSQL() sqlStmt {
	n := b.c.saves
	return sqlStmt{text: fmt.Sprintf("RELEASE SAVEPOINT sp%d", max(n, 1)), fails: n == 0,
		effect: func(c *client) { c.saves = n - 1 }}
}

// Settings PostgreSQL reports with ParameterStatus, which pgvalve carries
// from server to server; others only where the client keeps its server.

func (b *builder) settingSQL() sqlStmt {
	ch := b.g.ch
	switch ch.IntN(9) {
	case 0:
		return okSQL(fmt.Sprintf("SET application_name = 'app_%d_%d'", b.c.id, ch.IntN(50)))
	case 1:
		return okSQL("SET TimeZone = '" + oneOf(ch, "UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York") + "'")
	case 2:
		return okSQL("SET DateStyle = '" + oneOf(ch, "ISO, MDY", "ISO, DMY", "SQL, DMY", "German") + "'")
	case 3:
		return okSQL("SET IntervalStyle = '" + oneOf(ch, "postgres", "postgres_verbose", "iso_8601") + "'")
	case 4:
		return badSQL("SET TimeZone = 'Mars/Olympus'")
	case 5:
		return okSQL("RESET " + oneOf(ch, "TimeZone", "DateStyle", "application_name", "IntervalStyle", "ALL"))
	case 6:
		return okSQL("SHOW " + oneOf(ch, "TimeZone", "DateStyle", "application_name", "IntervalStyle"))
	case 7:
		if b.g.p.Sticky {
			return okSQL(oneOf(ch, "SET search_path = public, pg_catalog", "SHOW search_path", "SET work_mem = '8MB'", "SHOW work_mem"))
		}
		if b.c.inTx {
			return okSQL("SET LOCAL TimeZone = 'Asia/Kolkata'")
		}
	}
	return okSQL("SELECT timestamptz '2024-03-04 05:06:07+00', date '2024-03-04', interval '1 day 02:03:04', current_setting('application_name')")
}
