package stmt

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// sendQuery passes a simple Query through tr and returns the text of the
// Query the server gets, after any message pgvalve put before it.
func sendQuery(t *testing.T, tr *Tracker, sql string) (before int, got string) {
	t.Helper()
	msg := appendQuery(nil, sql)
	tr.BeginBatch()
	if err := tr.Client('Q', msg[5:], 0, len(msg)); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out := tr.ApplyBatch(msg)
	for len(out) > 0 && out[0] != 'Q' {
		before++
		out = out[1+int(uint32(out[1])<<24|uint32(out[2])<<16|uint32(out[3])<<8|uint32(out[4])):]
	}
	return before, strings.TrimSuffix(string(out[5:]), "\x00")
}

// answerWith passes server answers through tr and returns the types (and
// command tags) the client sees.
func answerWith(t *testing.T, tr *Tracker, msgs ...pgproto3.BackendMessage) []string {
	t.Helper()
	var buf []byte
	tr.BeginAnswers()
	for _, m := range msgs {
		off := len(buf)
		buf, _ = m.Encode(buf)
		if err := tr.Server(buf[off], buf[off+5:], off); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	out := tr.ApplyAnswers(buf)
	for len(out) > 0 {
		n := 1 + int(uint32(out[1])<<24|uint32(out[2])<<16|uint32(out[3])<<8|uint32(out[4]))
		w := string(out[0])
		if out[0] == 'C' {
			w += ":" + strings.TrimSuffix(string(out[5:n]), "\x00")
		}
		seen = append(seen, w)
		out = out[n:]
	}
	return seen
}

func cc(tag string) *pgproto3.CommandComplete {
	return &pgproto3.CommandComplete{CommandTag: []byte(tag)}
}

var ready = &pgproto3.ReadyForQuery{TxStatus: 'I'}

func TestASQLPrepareRunsUnderItsServerNameAndFollowsToTheNextServer(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	server := ServerName(" AS SELECT 1", []byte("PREPARE"))
	if _, got := sendQuery(t, tr, "PREPARE p AS SELECT 1"); got != "PREPARE "+server+" AS SELECT 1" {
		t.Fatalf("sent %q", got)
	}
	answerWith(t, tr, cc("PREPARE"), ready)
	if _, ok := tr.reg.Get("p"); !ok {
		t.Fatal("p is not the client's after its PREPARE ran")
	}
	tr.Attach(NewServerSet(10)) // the next transaction, on another server
	if _, got := sendQuery(t, tr, "EXECUTE p"); got != "PREPARE "+server+" AS SELECT 1\n;EXECUTE "+server {
		t.Fatalf("sent %q", got)
	}
	seen := answerWith(t, tr, cc("PREPARE"), &pgproto3.RowDescription{}, &pgproto3.DataRow{}, cc("SELECT 1"), ready)
	if strings.Join(seen, " ") != "T D C:SELECT 1 Z" {
		t.Fatalf("the client saw %v", seen)
	}
	if _, got := sendQuery(t, tr, "EXECUTE p"); got != "EXECUTE "+server {
		t.Fatalf("the server holds it now, yet %q was sent", got)
	}
}

func TestAFailedSQLPrepareLeavesNoName(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	sendQuery(t, tr, "PREPARE p AS SELECT * FROM nothing")
	answerWith(t, tr, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: `relation "nothing" does not exist`}, ready)
	if _, ok := tr.reg.Get("p"); ok {
		t.Fatal("a PREPARE that failed left its name")
	}
	if _, got := sendQuery(t, tr, "EXECUTE p"); got != "DEALLOCATE "+refusedName {
		t.Fatalf("sent %q", got)
	}
}

func TestTheSamePrepareTwiceInAQueryRunsOnce(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	server := ServerName(" AS SELECT 1", []byte("PREPARE"))
	_, got := sendQuery(t, tr, "PREPARE a AS SELECT 1; PREPARE b AS SELECT 1")
	if got != "PREPARE "+server+" AS SELECT 1; "+doNothing {
		t.Fatalf("sent %q", got)
	}
	if seen := answerWith(t, tr, cc("PREPARE"), cc("DO"), ready); strings.Join(seen, " ") != "C:PREPARE C:PREPARE Z" {
		t.Fatalf("the client saw %v", seen)
	}
}

func TestSQLPrepareTextSplitsIntoTypesAndStatement(t *testing.T) {
	for _, tc := range []struct {
		rest, body string
		typed, ok  bool
	}{
		{" AS SELECT 1", "SELECT 1", false, true},
		{" (int, numeric(10, 2)) as\tSELECT $1", "SELECT $1", true, true},
		{` ("my type") AS SELECT $1`, "SELECT $1", true, true},
		{" /* c */ AS SELECT 1", "", false, false},
		{" (int", "", false, false},
	} {
		body, typed, ok := splitPrepare(tc.rest)
		if body != tc.body || typed != tc.typed || ok != tc.ok {
			t.Errorf("%q: %q %v %v", tc.rest, body, typed, ok)
		}
	}
}

func TestExecuteIsFoundInsideExplainAndCreateTableAs(t *testing.T) {
	for sql, want := range map[string]string{
		"EXPLAIN EXECUTE p(1)":                      "p",
		"explain analyze verbose execute p":         "p",
		"EXPLAIN (COSTS OFF, ANALYZE) EXECUTE p(1)": "p",
		"CREATE TEMP TABLE t AS EXECUTE p":          "p",
		"EXPLAIN SELECT 1":                          "",
		"CREATE TABLE t AS SELECT 1":                "",
		"PREPARE TRANSACTION 'x'":                   "",
	} {
		st := explainOptions(sql, sqlscan.Statements(sql, 8)[0])
		got := ""
		if _, at, ok := preparedName(st.Words); ok {
			got = st.Words[at].Name()
		}
		if got != want {
			t.Errorf("%s: %q, want %q", sql, got, want)
		}
	}
}

func TestOnlyAParseMadeStatementPrepareCanMakeIsPreparedWithSQL(t *testing.T) {
	for _, tc := range []struct {
		query string
		types []byte
		ok    bool
	}{
		{"SELECT $1", []byte{0, 1, 0, 0, 0, 0}, true},
		{"SELECT $1", []byte{0, 1, 0, 0, 0, 23}, false},
		{"CREATE TABLE t ()", []byte{0, 0}, false},
		{"DEALLOCATE s1", []byte{0, 0}, false},
	} {
		st := NewStatement(Parse{Name: "s", Query: tc.query, ParamTypes: tc.types})
		if _, ok := st.sqlPrepare(); ok != tc.ok {
			t.Errorf("%s %v: %v", tc.query, tc.types, ok)
		}
	}
}
