package console

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// Type OIDs of the console's columns: PgBouncer declares text, int4, int8
// and numeric (and its timestamps as text); pgvalve's own commands add
// timestamptz.
const (
	oidText        = 25
	oidInt4        = 23
	oidInt8        = 20
	oidNumeric     = 1700
	oidTimestamptz = 1184
)

// column is one result column.
type column struct {
	name string
	oid  uint32
}

func text(name string) column    { return column{name, oidText} }
func int4(name string) column    { return column{name, oidInt4} }
func int8(name string) column    { return column{name, oidInt8} }
func numeric(name string) column { return column{name, oidNumeric} }
func tstz(name string) column    { return column{name, oidTimestamptz} }

// table is a result: its columns and rows. A cell is a string, an int, an
// int64, a uint64, or nil for NULL.
type table struct {
	cols []column
	rows [][]any
}

func (t *table) add(cells ...any) {
	if len(cells) != len(t.cols) {
		panic(fmt.Sprintf("console: row of %d cells for %d columns", len(cells), len(t.cols)))
	}
	t.rows = append(t.rows, cells)
}

// send answers t: RowDescription, DataRows, CommandComplete "SHOW" and
// ReadyForQuery.
func (s *session) send(t table) {
	fields := make([]pgproto3.FieldDescription, len(t.cols))
	for i, c := range t.cols {
		size := int16(-1)
		switch c.oid {
		case oidInt4:
			size = 4
		case oidInt8, oidTimestamptz:
			size = 8
		}
		fields[i] = pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.oid, DataTypeSize: size, TypeModifier: -1}
	}
	s.out = wire.Append(s.out, &pgproto3.RowDescription{Fields: fields})
	values := make([][]byte, len(t.cols))
	for _, row := range t.rows {
		for i, cell := range row {
			values[i] = cellBytes(cell)
		}
		s.out = wire.Append(s.out, &pgproto3.DataRow{Values: values})
	}
	s.complete("SHOW")
}

func cellBytes(cell any) []byte {
	switch v := cell.(type) {
	case nil:
		return nil
	case string:
		return []byte(v)
	case int:
		return strconv.AppendInt(nil, int64(v), 10)
	case int32:
		return strconv.AppendInt(nil, int64(v), 10)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case uint64:
		return strconv.AppendUint(nil, v, 10)
	}
	panic(fmt.Sprintf("console: cell of type %T", cell))
}

// pgbTime formats a time as PgBouncer's console does (local time, seconds,
// zone abbreviation, declared text); NULL for the zero time.
func pgbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// isoTime formats a timestamptz as PostgreSQL prints one, in UTC; NULL for
// the zero time.
func isoTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02 15:04:05.000000") + "+00"
}

// usec is a duration in whole microseconds, PgBouncer's unit for times.
func usec(d time.Duration) int64 { return d.Microseconds() }

// ms is a duration in milliseconds with three decimals, for numeric
// columns.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nullIfEmpty is NULL for "", as PgBouncer sends its unset strings.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
