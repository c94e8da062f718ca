package stmt

import (
	"reflect"
	"testing"
)

// A client's Parse-made statements travel to a new process with what
// PostgreSQL fixed for them, under the same server names.
func TestSavedStatementsComeBackAsTheClientMadeThem(t *testing.T) {
	reg := NewRegistry()
	st := NewStatement(Parse{Query: "select $1::int", ParamTypes: []byte{0, 0, 0, 23}})
	st.shape, st.parsed, st.desc, st.rows = 42, true, []byte{0, 1, 0, 0, 0, 23}, true
	reg.Add("s1", st)
	reg.unnamed = NewStatement(Parse{Query: "select 2"})
	saved, ok := NewTracker(reg).Save()
	if !ok || len(saved) != 2 {
		t.Fatalf("saved %v, %v", saved, ok)
	}
	back := Restore(saved)
	got, ok := back.reg.Get("s1")
	if !ok || !reflect.DeepEqual(*got, *st) {
		t.Fatalf("restored %+v, want %+v", got, st)
	}
	if u := back.reg.unnamed; u == nil || u.Query != "select 2" || u.Server != reg.unnamed.Server {
		t.Fatalf("the unnamed statement came back as %+v", u)
	}
}

// A statement SQL PREPARE made names another (its PREPARE's Parse): a
// client holding one stays, and so does one awaiting answers.
func TestAClientWithASQLPrepareOrAnswersDueIsNotSaved(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	sendQuery(t, tr, "PREPARE p AS SELECT 1")
	if _, ok := tr.Save(); ok {
		t.Fatal("saved a client awaiting its PREPARE's answer")
	}
	answerWith(t, tr, cc("PREPARE"), ready)
	if _, ok := tr.Save(); ok {
		t.Fatal("saved a client holding a statement SQL PREPARE made")
	}
}
