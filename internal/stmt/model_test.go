package stmt

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// modelBackend is a small in-memory model of one PostgreSQL backend: named
// and unnamed statements, portals, transaction blocks and the extended
// protocol's skip-to-Sync after an error. Query texts decide what happens:
// "fail" is a syntax error at Parse (42601), "boom" fails at execution
// (22012), SELECTs return one row, BEGIN/COMMIT/ROLLBACK, DEALLOCATE and
// DISCARD ALL act as in PostgreSQL. Checks run in PostgreSQL's order
// (postgres.c): a syntax error before the aborted-transaction check, that
// before the duplicate-name check of StorePreparedStatement.
type modelBackend struct {
	stmts   map[string]*modelStmt
	unnamed *modelStmt
	portals map[string]*modelPortal
	inBlock bool // inside BEGIN ... COMMIT
	failed  bool // the block failed: only COMMIT/ROLLBACK run
	skip    bool // an extended-protocol error: skip to Sync
	out     []byte
	log     []modelEvent
}

type modelStmt struct {
	query  string
	params []uint32
}

type modelPortal struct {
	query string
	ran   bool
}

// modelEvent records what the backend did with one frontend message.
type modelEvent struct {
	who     int // set by the sim: the client that sent it
	typ     byte
	kind    byte   // 'S' or 'P' of a Describe or Close
	name    string // statement (Parse, Bind, Describe S, Close S) or portal
	query   string // Parse or Query text
	skipped bool   // ignored after an error, waiting for Sync
	code    string // SQLSTATE of the error it raised, if any
	aborted bool   // the transaction block had failed when it arrived
	round   int    // set by the sim: the round of the client that sent it
}

func newModelBackend() *modelBackend {
	return &modelBackend{stmts: map[string]*modelStmt{}, portals: map[string]*modelPortal{}}
}

type pgError struct{ code, msg string }

func errf(code, format string, args ...any) *pgError {
	return &pgError{code, fmt.Sprintf(format, args...)}
}

func (m *modelBackend) aborted() bool { return m.inBlock && m.failed }

func (m *modelBackend) send(msg pgproto3.BackendMessage) {
	var err error
	if m.out, err = msg.Encode(m.out); err != nil {
		panic(err)
	}
}

// take returns the answers sent since the last take.
func (m *modelBackend) take() []byte {
	out := m.out
	m.out = nil
	return out
}

// feed processes whole frontend messages back to back.
func (m *modelBackend) feed(b []byte) {
	for len(b) > 0 {
		n := 1 + int(binary.BigEndian.Uint32(b[1:5]))
		m.handle(b[0], b[5:n])
		b = b[n:]
	}
}

func (m *modelBackend) handle(typ byte, body []byte) {
	ev := modelEvent{typ: typ, aborted: m.aborted()}
	var run func() *pgError
	switch typ {
	case 'P':
		var p pgproto3.Parse
		must(p.Decode(body))
		ev.name, ev.query = p.Name, p.Query
		run = func() *pgError { return m.parse(p.Name, p.Query, p.ParameterOIDs) }
	case 'B':
		// Like PostgreSQL, read the names and find the statement before
		// decoding the rest.
		portal, rest, _ := cstr(body)
		name, _, _ := cstr(rest)
		ev.name = string(name)
		run = func() *pgError { return m.bind(string(portal), string(name), body) }
	case 'D', 'C':
		ev.kind, ev.name = body[0], strings.TrimSuffix(string(body[1:]), "\x00")
		run = func() *pgError { return m.describeOrClose(typ, ev.kind, ev.name) }
	case 'E':
		var e pgproto3.Execute
		must(e.Decode(body))
		ev.name = e.Portal
		if p := m.portals[e.Portal]; p != nil {
			ev.query = p.query
		}
		run = func() *pgError { return m.execute(e.Portal) }
	case 'Q':
		ev.query = strings.TrimSuffix(string(body), "\x00")
		if name, all, ok := modelDeallocate(ev.query); ok && !all {
			ev.name = name
		}
	case 'S', 'H':
	default:
		panic(fmt.Sprintf("model: message %q", typ))
	}
	if ev.name != "" && typ != 'E' && ev.kind != 'P' {
		if st := m.stmts[ev.name]; st != nil && ev.query == "" {
			ev.query = st.query
		}
	}
	if m.skip && typ != 'S' {
		ev.skipped = true
		m.log = append(m.log, ev)
		return
	}
	switch typ {
	case 'S':
		m.skip = false
		m.endImplicit()
		m.send(&pgproto3.ReadyForQuery{TxStatus: m.status()})
	case 'Q':
		m.unnamed = nil // a simple query drops the unnamed statement and portal
		delete(m.portals, "")
		if err := m.exec(ev.query, true); err != nil {
			ev.code = err.code
			m.raise(err, false)
		}
		m.endImplicit()
		m.send(&pgproto3.ReadyForQuery{TxStatus: m.status()})
	case 'H':
	default:
		if err := run(); err != nil {
			ev.code = err.code
			m.raise(err, true)
		}
	}
	m.log = append(m.log, ev)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func (m *modelBackend) status() byte {
	switch {
	case !m.inBlock:
		return 'I'
	case m.failed:
		return 'E'
	}
	return 'T'
}

// endImplicit ends the implicit transaction of a Sync or simple query.
func (m *modelBackend) endImplicit() {
	if !m.inBlock {
		clear(m.portals)
		m.failed = false
	}
}

func (m *modelBackend) raise(e *pgError, extended bool) {
	m.send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: e.code, Message: e.msg})
	if m.inBlock {
		m.failed = true
	} else {
		clear(m.portals) // the implicit transaction is rolled back
	}
	m.skip = extended
}

func isExit(q string) bool { return q == "COMMIT" || q == "ROLLBACK" }

func returnsRows(q string) bool { return strings.HasPrefix(q, "SELECT") }

var errAborted = &pgError{"25P02", "current transaction is aborted, commands ignored until end of transaction block"}

func (m *modelBackend) parse(name, query string, params []uint32) *pgError {
	if name == "" {
		m.unnamed = nil
	}
	if strings.Contains(query, "fail") {
		return errf("42601", `syntax error at or near "fail"`)
	}
	if m.aborted() && !isExit(query) {
		return errAborted
	}
	st := &modelStmt{query: query, params: params}
	if name == "" {
		m.unnamed = st
	} else if _, dup := m.stmts[name]; dup {
		return errf("42P05", "prepared statement \"%s\" already exists", name)
	} else {
		m.stmts[name] = st
	}
	m.send(&pgproto3.ParseComplete{})
	return nil
}

func (m *modelBackend) lookup(name string) (*modelStmt, *pgError) {
	if name == "" {
		if m.unnamed == nil {
			return nil, errf("26000", "unnamed prepared statement does not exist")
		}
		return m.unnamed, nil
	}
	st, ok := m.stmts[name]
	if !ok {
		return nil, errf("26000", "prepared statement \"%s\" does not exist", name)
	}
	return st, nil
}

func (m *modelBackend) bind(portal, name string, body []byte) *pgError {
	st, err := m.lookup(name)
	if err != nil {
		return err
	}
	var b pgproto3.Bind
	if b.Decode(body) != nil {
		return errf("08P01", "insufficient data left in message")
	}
	params := len(b.Parameters)
	if params != len(st.params) {
		return errf("08P01", "bind message supplies %d parameters, but prepared statement \"%s\" requires %d", params, name, len(st.params))
	}
	if m.aborted() && !isExit(st.query) {
		return errAborted
	}
	if _, dup := m.portals[portal]; dup && portal != "" {
		return errf("42P03", "cursor \"%s\" already exists", portal)
	}
	m.portals[portal] = &modelPortal{query: st.query}
	m.send(&pgproto3.BindComplete{})
	return nil
}

func rowDescription(query string) *pgproto3.RowDescription {
	return &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte(query), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}}
}

func (m *modelBackend) describeOrClose(typ, kind byte, name string) *pgError {
	if typ == 'C' {
		switch {
		case kind == 'P':
			delete(m.portals, name)
		case name == "":
			m.unnamed = nil
		default:
			delete(m.stmts, name)
		}
		m.send(&pgproto3.CloseComplete{})
		return nil
	}
	var query string
	if kind == 'S' {
		st, err := m.lookup(name)
		if err != nil {
			return err
		}
		if m.aborted() && returnsRows(st.query) {
			return errAborted
		}
		m.send(&pgproto3.ParameterDescription{ParameterOIDs: append([]uint32{}, st.params...)})
		query = st.query
	} else {
		p, ok := m.portals[name]
		if !ok {
			return errf("34000", "portal \"%s\" does not exist", name)
		}
		if m.aborted() && returnsRows(p.query) {
			return errAborted
		}
		query = p.query
	}
	if returnsRows(query) {
		m.send(rowDescription(query))
	} else {
		m.send(&pgproto3.NoData{})
	}
	return nil
}

func (m *modelBackend) execute(portal string) *pgError {
	p, ok := m.portals[portal]
	if !ok {
		return errf("34000", "portal \"%s\" does not exist", portal)
	}
	if m.aborted() && !isExit(p.query) {
		return errAborted
	}
	if p.ran {
		if returnsRows(p.query) {
			m.send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 0")})
			return nil
		}
		return errf("55000", "portal \"%s\" cannot be run", portal)
	}
	p.ran = true
	return m.exec(p.query, false)
}

// exec runs a statement, for Execute or (simple) a simple query.
func (m *modelBackend) exec(q string, simple bool) *pgError {
	if strings.Contains(q, "fail") {
		return errf("42601", `syntax error at or near "fail"`)
	}
	if m.aborted() && !isExit(q) {
		return errAborted
	}
	tag := q
	switch {
	case returnsRows(q):
		if strings.Contains(q, "boom") {
			return errf("22012", "division by zero")
		}
		if simple {
			m.send(rowDescription(q))
		}
		m.send(&pgproto3.DataRow{Values: [][]byte{[]byte(q)}})
		tag = "SELECT 1"
	case q == "BEGIN":
		if m.inBlock {
			m.send(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "25001", Message: "there is already a transaction in progress"})
		}
		m.inBlock = true
	case isExit(q):
		if !m.inBlock {
			m.send(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "25P01", Message: "there is no transaction in progress"})
		} else if m.failed {
			tag = "ROLLBACK"
		}
		m.inBlock, m.failed = false, false
		clear(m.portals)
	case strings.HasPrefix(q, "DO "):
		tag = "DO" // a block that does nothing
	case q == "DISCARD ALL":
		if m.inBlock {
			return errf("25001", "DISCARD ALL cannot run inside a transaction block")
		}
		// The unnamed statement stays (a simple query drops it anyway).
		clear(m.stmts)
		clear(m.portals)
	default:
		name, all, ok := modelDeallocate(q)
		if !ok {
			panic("model: unknown query " + q)
		}
		if all {
			clear(m.stmts)
			tag = "DEALLOCATE ALL"
		} else if _, ok := m.stmts[name]; !ok {
			return errf("26000", "prepared statement \"%s\" does not exist", name)
		} else {
			delete(m.stmts, name)
			tag = "DEALLOCATE"
		}
	}
	m.send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

// The model is the reference the Tracker is checked against, so it gets
// checks of its own against what PostgreSQL answers.
func TestModelBackendAnswersAsPostgres(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batches [][]pgproto3.FrontendMessage
		want    []string
	}{
		{"a prepare, describe and execute", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mDescribe('S', "s1"), mBind("", "s1", 0), mDescribe('P', ""), mExecute(""), mSync,
		}}, []string{"1", "t", "T", "2", "T", "D", "C:SELECT 1", "Z:I"}},
		{"an error skips everything up to Sync", [][]pgproto3.FrontendMessage{{
			mBind("", "nope", 0), mParse("s1", "SELECT 1", 0), mExecute(""), mFlush, mQuery("SELECT 1"), mSync, mParse("s1", "SELECT 1", 0), mSync,
		}}, []string{"E:26000", "Z:I", "1", "Z:I"}},
		{"a duplicate name fails with 42P05", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mSync, mParse("s1", "SELECT 2", 0), mSync,
		}}, []string{"1", "Z:I", "E:42P05", "Z:I"}},
		{"a syntax error wins over a duplicate name", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mParse("s1", "SELECT fail", 0), mSync,
		}}, []string{"1", "E:42601", "Z:I"}},
		{"a failed Parse of the unnamed statement drops the old one", [][]pgproto3.FrontendMessage{{
			mParse("", "SELECT 1", 0), mSync, mParse("", "SELECT fail", 0), mSync, mBind("", "", 0), mSync,
		}}, []string{"1", "Z:I", "E:42601", "Z:I", "E:26000", "Z:I"}},
		{"a skipped Parse of the unnamed statement keeps the old one", [][]pgproto3.FrontendMessage{{
			mParse("", "SELECT 1", 0), mSync, mBind("", "nope", 0), mParse("", "SELECT 2", 0), mSync, mBind("", "", 0), mSync,
		}}, []string{"1", "Z:I", "E:26000", "Z:I", "2", "Z:I"}},
		{"a failed transaction refuses all but ROLLBACK", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN")},
			{mParse("", "SELECT boom", 0), mBind("", "", 0), mExecute(""), mSync},
			{mParse("s1", "SELECT 1", 0), mSync, mParse("s2", "ROLLBACK", 0), mBind("", "s2", 0), mExecute(""), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "2", "E:22012", "Z:E", "E:25P02", "Z:E", "1", "2", "C:ROLLBACK", "Z:I"}},
		{"statements outlive a rolled-back transaction", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mParse("s1", "SELECT 1", 0), mSync, mQuery("ROLLBACK"), mBind("", "s1", 0), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "Z:T", "C:ROLLBACK", "Z:I", "2", "Z:I"}},
		{"portals end with the transaction", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 0), mBind("p1", "s1", 0), mSync, mExecute("p1"), mSync},
		}, []string{"1", "2", "Z:I", "E:34000", "Z:I"}},
		{"a named portal cannot be bound twice", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mParse("s1", "SELECT 1", 0), mBind("p1", "s1", 0), mBind("p1", "s1", 0), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "2", "E:42P03", "Z:E"}},
		{"the parameter count must match", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 1), mBind("", "s1", 0), mSync},
		}, []string{"1", "E:08P01", "Z:I"}},
		{"DEALLOCATE drops one statement or all", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 0), mParse("S1", "SELECT 1", 0), mParse("s2", "SELECT 2", 0), mSync},
			{mQuery(`DEALLOCATE "S1"`), mQuery("deallocate prepare S1;"), mQuery("DEALLOCATE s1"), mQuery("DEALLOCATE ALL"), mBind("", "s2", 0), mSync},
		}, []string{"1", "1", "1", "Z:I", "C:DEALLOCATE", "Z:I", "C:DEALLOCATE", "Z:I", "E:26000", "Z:I", "C:DEALLOCATE ALL", "Z:I", "E:26000", "Z:I"}},
		{"a simple query drops the unnamed statement", [][]pgproto3.FrontendMessage{
			{mParse("", "SELECT 1", 0), mSync, mQuery("SELECT 2"), mDescribe('S', ""), mSync},
		}, []string{"1", "Z:I", "T", "D", "C:SELECT 1", "Z:I", "E:26000", "Z:I"}},
		{"DISCARD ALL refuses a transaction block", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mQuery("DISCARD ALL"), mQuery("COMMIT"), mQuery("COMMIT")},
		}, []string{"C:BEGIN", "Z:T", "E:25001", "Z:E", "C:ROLLBACK", "Z:I", "N:25P01", "C:COMMIT", "Z:I"}},
		{"Close never fails", [][]pgproto3.FrontendMessage{
			{mClose('S', "nope"), mClose('P', "nope"), mClose('S', ""), mSync},
		}, []string{"3", "3", "3", "Z:I"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModelBackend()
			for _, b := range tc.batches {
				m.feed(fe(b...))
			}
			if got := messageTypes(t, m.take()); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("answers %v\n want %v", got, tc.want)
			}
		})
	}
}
