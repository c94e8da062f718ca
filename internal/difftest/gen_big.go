package difftest

import (
	"fmt"
	"strings"
)

// Buffer boundaries the sizes are drawn around: PostgreSQL's 8 KiB socket
// buffers, pgvalve's 16 KiB read buffer (wire.DefaultBufferSize) and its
// double, 64 KiB, and messages of one and several MiB.
const (
	kib = 1 << 10
	mib = 1 << 20
)

// size draws a message size, its 5-byte header included, from around the
// buffer boundaries, at most Options.MaxSize.
func (g *gen) size() int {
	ch := g.ch
	var s int
	switch pick(ch, 20, 12, 25, 10, 8, 4, 2) {
	case 0:
		return ch.IntN(300)
	case 1:
		s = 8 * kib
	case 2:
		s = 16 * kib
	case 3:
		s = 32 * kib
	case 4:
		s = 64 * kib
	case 5:
		s = mib
	default:
		s = (2 + ch.IntN(3)) * mib
	}
	d := ch.IntN(13) - 6
	if chance(ch, 5) {
		d = ch.IntN(129) - 64
	}
	if s+d > g.o.MaxSize {
		return 16*kib + d
	}
	return s + d
}

// pad is n filler bytes (none when n < 0).
func pad(n int) string { return strings.Repeat("x", max(n, 0)) }

// big sends or asks for one message of a drawn size: a Query, Parse or Bind
// that large, COPY data, a result row, an error, a notice.
func (b *builder) big() {
	size := b.g.size()
	switch b.g.ch.IntN(8) {
	case 0:
		b.bigQuery(size)
	case 1:
		b.bigParse(size)
	case 2:
		b.bigBind(size)
	case 3:
		b.bigCopyData(size)
	case 4:
		b.note("result row of %d bytes", size)
		b.run(okSQL(fmt.Sprintf("SELECT repeat('x', %d)", max(size-11, 0)))) // DataRow: header, count, length
	case 5:
		b.note("error of about %d bytes", size)
		b.run(badSQL(fmt.Sprintf("SELECT repeat('x', %d)::int", max(size-120, 1))))
	case 6:
		b.note("notice of about %d bytes", size)
		b.run(okSQL(fmt.Sprintf("DO $$ BEGIN RAISE NOTICE '%%', repeat('n', %d); END $$", max(size-100, 0))))
	default:
		b.note("COPY TO data of %d bytes", size)
		b.run(okSQL(fmt.Sprintf("COPY (SELECT repeat('x', %d)) TO STDOUT", max(size-6, 0)))) // the row and its newline
	}
}

// BigQuery is a simple Query of exactly size bytes on the wire (at least 6,
// the empty query): an INSERT of a long note, a SELECT of a long literal,
// or two statements.
func BigQuery(size, id int, kind int) string {
	text := size - headerLen - 1
	var prefix, suffix string
	switch kind % 3 {
	case 0:
		prefix, suffix = fmt.Sprintf("INSERT INTO t_items (id, note) VALUES (%d, '", id), "')"
	case 1:
		prefix, suffix = "SELECT length('", "')"
	default:
		prefix, suffix = "SELECT 1; SELECT length('", "')"
	}
	if text < len(prefix)+len(suffix) {
		return strings.Repeat(" ", max(text, 0)) // an empty query
	}
	return prefix + pad(text-len(prefix)-len(suffix)) + suffix
}

func (b *builder) bigQuery(size int) {
	kind := b.g.ch.IntN(3)
	id := b.c.freshID()
	sql := BigQuery(size, id, kind)
	b.note("query of %d bytes", Query(sql).Size())
	s := okSQL(sql)
	if kind == 0 && strings.HasPrefix(sql, "INSERT") {
		s.effect = func(c *client) { c.pending = append(c.pending, id) }
	}
	b.query(s)
}

// bigParse prepares a statement whose Parse is size bytes, and runs it.
func (b *builder) bigParse(size int) {
	name := b.pickName()
	// Parse: header, name, NUL, query, NUL, int16 parameter count.
	text := size - headerLen - len(name) - 1 - 1 - 2
	sql := "SELECT length('" + pad(text-len("SELECT length('')")) + "')"
	s := b.newStmt(&tmpl{sql: sql, tableFree: true, args: noArgs})
	b.parse(name, s)
	b.bind("", name, nil, 0)
	b.execute("", 0)
	b.note("Parse of %d bytes", Parse(name, sql).Size())
	b.sync()
}

// bigBind binds one text parameter so that the Bind is size bytes.
func (b *builder) bigBind(size int) {
	name := b.pickName()
	b.parse(name, b.newStmt(tmplLength))
	// Bind: header, portal and name with NULs, three int16 counts, the
	// parameter's int32 length and bytes.
	arg := pad(size - headerLen - 1 - len(name) - 1 - 6 - 4)
	b.bind("", name, []string{arg}, 0)
	b.execute("", 0)
	b.note("Bind of %d bytes", Bind("", name, arg).Size())
	b.sync()
}

var tmplLength = &tmpl{sql: "SELECT length($1::text)", params: 1, tableFree: true,
	args: func(b *builder, bad bool) ([]string, byte) { return []string{"abc"}, 0 }}

// bigCopyData sends one CopyData message of size bytes: a single row.
func (b *builder) bigCopyData(size int) {
	row := fmt.Sprintf("%d\t", b.g.ch.IntN(100))
	data := row + pad(size-headerLen-len(row)-1) + "\n"
	b.note("CopyData of %d bytes", CopyData([]byte(data)).Size())
	b.copyFrom("COPY t_copy (a, b) FROM STDIN", [][]byte{[]byte(data)}, false, false)
}

// copyIn is COPY FROM STDIN as a simple Query with its data in the same
// batch, as psql sends it: rows split across CopyData messages anywhere,
// sometimes a bad row or a CopyFail.
func (b *builder) copyIn() {
	csv := chance(b.g.ch, 3)
	sql := "COPY t_copy (a, b) FROM STDIN"
	if csv {
		sql += " (FORMAT csv)"
	}
	data, bad := b.copyRows(csv)
	abort := chance(b.g.ch, 6)
	b.note("COPY FROM STDIN of %d bytes (bad row %v, CopyFail %v)", len(data), bad, abort)
	b.copyFrom(sql, b.pieces(data), bad, abort)
}

func (b *builder) copyFrom(sql string, pieces [][]byte, bad, abort bool) {
	b.add(Query(sql))
	b.ready++
	for _, p := range pieces {
		b.add(CopyData(p))
	}
	if abort {
		b.add(CopyFail("client gave up"))
	} else {
		b.add(CopyDone())
	}
	b.afterQuery(b.runStatements([]sqlStmt{{fails: bad || abort}}))
}

// copyRows is COPY text or CSV data, with one bad row when bad.
func (b *builder) copyRows(csv bool) (data []byte, bad bool) {
	n := b.g.ch.IntN(6)
	badAt := -1
	if n > 0 && chance(b.g.ch, 5) {
		badAt = b.g.ch.IntN(n)
	}
	var sb strings.Builder
	for i := range n {
		a := fmt.Sprint(i)
		if i == badAt {
			a = "x"
		}
		if csv {
			fmt.Fprintf(&sb, "%s,\"row, %d\"\n", a, i)
		} else {
			fmt.Fprintf(&sb, "%s\trow %d\n", a, i)
		}
	}
	return []byte(sb.String()), badAt >= 0
}

// pieces splits data into one to four CopyData bodies at any byte.
func (b *builder) pieces(data []byte) [][]byte {
	var out [][]byte
	for range b.g.ch.IntN(4) {
		if len(data) < 2 {
			break
		}
		at := 1 + b.g.ch.IntN(len(data)-1)
		out = append(out, data[:at])
		data = data[at:]
	}
	return append(out, data)
}

// copyInExtended is COPY FROM STDIN the way libpq sends it through the
// extended protocol: Parse, Bind, Describe, Execute and Sync, then the
// data, CopyDone and another Sync. PostgreSQL ignores Sync and Flush while
// it reads COPY data, so the whole answers with one ReadyForQuery. Sync
// and Flush go inside the data only when no row is bad: after an error
// they would no longer be swallowed.
func (b *builder) copyInExtended() {
	data, bad := b.copyRows(false)
	abort := chance(b.g.ch, 6)
	b.extended(Parse("", "COPY t_copy (a, b) FROM STDIN"))
	b.c.unnamed = nil
	b.extended(Bind("", ""))
	b.extended(Describe('P', ""))
	b.extended(Execute("", 0))
	b.add(Sync()) // swallowed by the COPY
	for _, p := range b.pieces(data) {
		b.add(CopyData(p))
		if !bad && chance(b.g.ch, 3) {
			b.add(oneOf(b.g.ch, Sync(), Flush()))
		}
	}
	if abort {
		b.add(CopyFail("client gave up"))
	} else {
		b.add(CopyDone())
	}
	b.failed = bad || abort
	b.note("extended COPY FROM STDIN of %d bytes (bad row %v, CopyFail %v)", len(data), bad, abort)
	b.sync()
}

// copyOut is COPY TO STDOUT of a few rows.
func (b *builder) copyOut() {
	n := b.g.ch.IntN(5)
	b.note("COPY TO STDOUT of %d rows", n)
	b.run(okSQL(fmt.Sprintf("COPY (SELECT g, repeat('o', g) FROM generate_series(1, %d) g) TO STDOUT", n)))
}
