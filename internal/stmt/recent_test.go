package stmt

import (
	"testing"
)

// A driver parsing the same text as the unnamed statement on every
// execution gets a fresh statement each time (its shape may change), under
// the server name its content gives; other content gets its own name.
func TestTheSameUnnamedParseAgainIsAFreshStatementUnderTheSameName(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(100))
	m := newModelBackend()
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	unnamedAfter := func(nparams int, query string) *Statement {
		t.Helper()
		exchange(t, tr, m, mParse("", query, nparams), mSync)
		st := tr.reg.unnamed
		if st == nil || st.Query != query {
			t.Fatalf("after Parse of %q the client's unnamed statement is %+v", query, st)
		}
		if want := ServerName(query, oidBytes(nparams)); st.Server != want {
			t.Fatalf("server name %q for %q with %d types, want %q", st.Server, query, nparams, want)
		}
		return st
	}
	first := unnamedAfter(0, q)
	again := unnamedAfter(0, q)
	if again == first {
		t.Fatal("the second Parse reused the first statement: its shape could be stale")
	}
	if typed := unnamedAfter(1, q); typed.Server == first.Server {
		t.Fatal("a Parse with parameter types got the name of the one without")
	}
	if other := unnamedAfter(0, q+" "); other.Server == first.Server {
		t.Fatal("another text got the same server name")
	}
	// EXECUTE names a statement: never taken for the plain text before it.
	exchange(t, tr, m, mParse("s1", "SELECT 1", 0), mSync)
	exec := unnamedAfterExecute(t, tr, m)
	if exec.ref != "s1" || exec.rewritten == "" {
		t.Fatalf("a Parse of EXECUTE s1 was not rewritten: %+v", exec)
	}
}

func unnamedAfterExecute(t *testing.T, tr *Tracker, m *modelBackend) *Statement {
	t.Helper()
	for range 2 { // the second time follows a Parse of the same text
		exchange(t, tr, m, mParse("", "EXECUTE s1", 0), mSync)
	}
	return tr.reg.unnamed
}

func oidBytes(n int) []byte {
	p := mParse("", "", n)
	b, _ := p.Encode(nil)
	return b[len(b)-2-4*n:]
}
