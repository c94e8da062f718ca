package stmt

import (
	"reflect"
	"strings"
	"testing"
)

func TestRegistryKeepsTheClientsStatementsByName(t *testing.T) {
	r := NewRegistry()
	a := &Statement{Query: "SELECT 1", Server: "pgv_a"}
	b := &Statement{Query: "SELECT 2", Server: "pgv_b"}
	r.Add("s1", a)
	r.Add("S1", b)
	if got, ok := r.Get("s1"); !ok || got != a {
		t.Fatalf("Get(s1) = %v %v", got, ok)
	}
	if got, ok := r.Get("S1"); !ok || got != b {
		t.Fatalf("names are case-sensitive: Get(S1) = %v %v", got, ok)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d", r.Len())
	}
	r.Add("s1", b)
	if got, _ := r.Get("s1"); got != b || r.Len() != 2 {
		t.Fatalf("Add over an existing name does not replace it")
	}
	r.Remove("s1")
	r.Remove("missing")
	if _, ok := r.Get("s1"); ok || r.Len() != 1 {
		t.Fatalf("Remove left s1 or removed too much: Len %d", r.Len())
	}
	r.Clear()
	if r.Len() != 0 {
		t.Fatalf("Clear left %d", r.Len())
	}
}

// lru lists a set's statements, most recently used first.
func lru(s *ServerSet) []string {
	var out []string
	for e := s.ll.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*serverStmt).name)
	}
	return out
}

// setStep is one call on a ServerSet and what it must return.
type setStep struct {
	do    string // add NAME [keep,keep], ready NAME, stale NAME, remove NAME, clear
	want  string // evicted name (add) or "true"/"false" (ready)
	order string // the set afterwards, most recently used first
}

func runSetSteps(t *testing.T, max int, steps []setStep) {
	t.Helper()
	s := NewServerSet(max)
	for i, st := range steps {
		f := strings.Fields(st.do)
		var got string
		switch f[0] {
		case "add":
			keep := map[string]bool{}
			if len(f) > 2 {
				for _, k := range strings.Split(f[2], ",") {
					keep[k] = true
				}
			}
			got = strings.Join(s.Add(f[1], keep), ",")
		case "ready":
			got = map[bool]string{true: "true", false: "false"}[s.Ready(f[1])]
		case "stale":
			s.MarkStale(f[1])
		case "remove":
			s.Remove(f[1])
		case "clear":
			s.Clear()
		}
		if got != st.want {
			t.Fatalf("step %d %q returned %q, want %q", i, st.do, got, st.want)
		}
		if order := strings.Join(lru(s), " "); order != st.order {
			t.Fatalf("step %d %q left %q, want %q", i, st.do, order, st.order)
		}
		if s.Len() != len(s.m) || s.Len() != len(lru(s)) {
			t.Fatalf("step %d: Len %d, map %d, list %d disagree", i, s.Len(), len(s.m), len(lru(s)))
		}
	}
}

func TestServerSetEvictsTheLeastRecentlyUsed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []setStep
	}{
		{"the oldest goes first when the set is full", []setStep{
			{"add a", "", "a"}, {"add b", "", "b a"}, {"add c", "", "c b a"},
			{"add d", "a", "d c b"}, {"add e", "b", "e d c"},
		}},
		{"Ready marks a statement used", []setStep{
			{"add a", "", "a"}, {"add b", "", "b a"}, {"add c", "", "c b a"},
			{"ready a", "true", "a c b"}, {"add d", "b", "d a c"},
		}},
		{"adding a held statement refreshes it and evicts nothing", []setStep{
			{"add a", "", "a"}, {"add b", "", "b a"}, {"add c", "", "c b a"},
			{"add a", "", "a c b"}, {"add d", "b", "d a c"},
		}},
		{"Ready of a missing statement changes nothing", []setStep{
			{"add a", "", "a"}, {"ready z", "false", "a"},
		}},
		{"the keep set protects the statements a batch needs", []setStep{
			{"add a", "", "a"}, {"add b", "", "b a"}, {"add c", "", "c b a"},
			{"add d a,b", "c", "d b a"}, {"add e d,a", "b", "e d a"},
		}},
		{"Remove and Clear forget statements", []setStep{
			{"add a", "", "a"}, {"add b", "", "b a"}, {"remove a", "", "b"}, {"remove zz", "", "b"},
			{"add c", "", "c b"}, {"add d", "", "d c b"}, {"clear", "", ""}, {"add e", "", "e"},
		}},
		{"a set of one swaps its statement", []setStep{
			{"add a", "", "a"}, {"add b", "a", "b"}, {"add b", "", "b"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runSetSteps(t, 3-boolInt(strings.HasPrefix(tc.name, "a set of one"))*2, tc.steps) })
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestServerSetGrowsPastMaxWhenABatchNeedsEveryStatement(t *testing.T) {
	// Documented behaviour of Add: with nothing evictable it still adds.
	runSetSteps(t, 2, []setStep{
		{"add a", "", "a"}, {"add b", "", "b a"}, {"add c a,b", "", "c b a"},
	})
}

func TestServerSetReturnsToMaxAfterABatchNeededMore(t *testing.T) {
	s := NewServerSet(2)
	s.Add("a", nil)
	s.Add("b", nil)
	s.Add("c", map[string]bool{"a": true, "b": true})
	s.Add("d", nil)
	if s.Len() > 2 {
		t.Fatalf("the set holds %v, over its max 2", lru(s))
	}
}

func TestServerSetStaleStatementsMustBePreparedAfresh(t *testing.T) {
	s := NewServerSet(3)
	s.Add("a", nil)
	s.Add("b", nil)
	s.MarkStale("a")
	s.MarkStale("missing")
	if s.Ready("a") || !s.Stale("a") || !s.Has("a") {
		t.Fatalf("stale a: Ready %v Stale %v Has %v", s.Ready("a"), s.Stale("a"), s.Has("a"))
	}
	if s.Stale("b") || s.Stale("missing") || s.Has("missing") {
		t.Fatalf("only a is stale")
	}
	if got := strings.Join(lru(s), " "); got != "b a" {
		t.Fatalf("a stale Ready marked a used: %q", got)
	}
	if ev := s.Add("a", nil); ev != nil || !s.Ready("a") || s.Stale("a") {
		t.Fatalf("Add of a stale statement must refresh it: evicted %q Ready %v", ev, s.Ready("a"))
	}
	s.unnamed = "pgv_x"
	s.Clear()
	if s.Len() != 0 || s.Has("a") || s.unnamed != "" {
		t.Fatalf("Clear left %v unnamed %q", lru(s), s.unnamed)
	}
}

func TestDeallocateNameRecognisesOneDeallocateOfAName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		want  string // "" for not recognised
	}{
		{"a plain name", "DEALLOCATE s1", "s1"},
		{"lower-case keyword", "deallocate s1", "s1"},
		{"an unquoted name folds to lower case", "DEALLOCATE S1", "s1"},
		{"a quoted name keeps its case", `DEALLOCATE "S1"`, "S1"},
		{"a quoted name with a doubled quote", `DEALLOCATE "q""t"`, `q"t`},
		{"the PREPARE keyword", "DEALLOCATE PREPARE s1", "s1"},
		{"the PREPARE keyword in any case", "Deallocate prepare S2", "s2"},
		{"a trailing semicolon", "DEALLOCATE s1;", "s1"},
		{"spaces and a semicolon", "  DEALLOCATE\t s1 ;  ", "s1"},
		{"a quoted ALL is a name", `DEALLOCATE "all"`, "all"},
		{"a statement called prepare", "DEALLOCATE prepare", "prepare"},
		{"ALL is not a name", "DEALLOCATE ALL", ""},
		{"all in lower case is not a name", "deallocate all;", ""},
		{"PREPARE ALL is not a name", "DEALLOCATE PREPARE ALL", ""},
		{"a bare DEALLOCATE", "DEALLOCATE", ""},
		{"two names", "DEALLOCATE a b", ""},
		{"another statement after it", "DEALLOCATE s1; SELECT 1", ""},
		{"another command", "SELECT 1", ""},
		{"an empty query", "", ""},
		{"a quoted name with a space", `DEALLOCATE "my stmt"`, "my stmt"},
		{"semicolons after it", "DEALLOCATE s1;;", "s1"},
		{"only ASCII letters fold", "DEALLOCATE É1", "É1"},
		{"comments between words", "DEALLOCATE /* a /* nested */ one */ s1 -- done", "s1"},
		{"a quoted keyword is not one", `"DEALLOCATE" s1`, ""},
		{"an empty quoted name", `DEALLOCATE ""`, ""},
		{"an unterminated comment", "DEALLOCATE s1 /*", ""},
		{"a literal", "DEALLOCATE 's1'", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := deallocateName(append([]byte(tc.query), 0))
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("deallocateName(%q) = %q %v, want %q", tc.query, got, ok, tc.want)
			}
		})
	}
}

func TestDeallocateNameRefusesBodiesItCannotTrust(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"no terminating NUL", []byte("DEALLOCATE s1")},
		{"an empty body", nil},
		{"a body over 256 bytes", append([]byte("DEALLOCATE s"+strings.Repeat("x", 260)), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := deallocateName(tc.body); ok {
				t.Fatalf("deallocateName = %q, want not recognised", got)
			}
		})
	}
}

func TestDeferrableIsOnlyNewNamedParsesAndSyncs(t *testing.T) {
	p := func(name string) Message {
		return Message{Type: 'P', Body: []byte(name + "\x00SELECT 1\x00\x00\x00")}
	}
	sync := Message{Type: 'S'}
	for _, tc := range []struct {
		name  string
		batch []Message
		want  bool
	}{
		{"a PQprepare batch", []Message{p("s1"), sync}, true},
		{"several prepares and syncs", []Message{p("s1"), sync, p("s2"), p("s3"), sync}, true},
		{"a Sync alone", []Message{sync}, false},
		{"no final Sync", []Message{p("s1"), sync, p("s2")}, false},
		{"the unnamed statement", []Message{p(""), sync}, false},
		{"an empty Parse body", []Message{{Type: 'P'}, sync}, false},
		{"a Parse that does not decode", []Message{{Type: 'P', Body: []byte("s1\x00SELECT 1\x00")}, sync}, false},
		{"a Describe with the Parse", []Message{p("s1"), {Type: 'D', Body: []byte("Ss1\x00")}, sync}, false},
		{"a Flush", []Message{p("s1"), {Type: 'H'}, sync}, false},
		{"a name the client has", []Message{p("used"), sync}, false},
		{"a name parsed twice", []Message{p("s1"), sync, p("s1"), sync}, false},
		{"nothing", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(NewRegistry())
			tr.reg.Add("used", NewStatement(Parse{Name: "used", Query: "SELECT 0"}))
			if got := tr.Deferrable(tc.batch); got != tc.want {
				t.Fatalf("Deferrable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDeferAnswersAsPostgresWouldAndRegisters(t *testing.T) {
	tr := NewTracker(NewRegistry())
	parse := func(name, q string) Message {
		return Message{Type: 'P', Body: append([]byte(name+"\x00"+q+"\x00"), paramTypes(23)...)}
	}
	batch := []Message{parse("s1", "SELECT $1"), {Type: 'S'}, parse("s2", "SELECT 2"), parse("s3", "SELECT 3"), {Type: 'S'}}
	if !tr.Deferrable(batch) {
		t.Fatal("the batch must be deferrable")
	}
	out, err := tr.Defer(batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := messageTypes(t, out)
	if want := []string{"1", "Z:I", "1", "1", "Z:I"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Defer answered %v, want %v", got, want)
	}
	for _, name := range []string{"s1", "s2", "s3"} {
		if st, ok := tr.reg.Get(name); !ok || st.parsed {
			t.Errorf("%s: registered %v, parsed %v; want registered, not parsed yet", name, ok, st != nil && st.parsed)
		}
	}
	if st, _ := tr.reg.Get("s1"); st.Query != "SELECT $1" || st.Server != ServerName("SELECT $1", paramTypes(23)) {
		t.Errorf("s1 = %+v", st)
	}
}

func TestResetCommandRecognisesDeallocateAllAndDiscardAll(t *testing.T) {
	for query, want := range map[string]string{
		"DEALLOCATE ALL":           "DEALLOCATE ALL",
		"deallocate prepare all;":  "DEALLOCATE ALL",
		"  discard all ":           "DISCARD ALL",
		"DEALLOCATE s1":            "",
		"DISCARD PLANS":            "",
		"DEALLOCATE ALL; SELECT 1": "",
		"SELECT 1":                 "",
	} {
		if got := resetCommand(append([]byte(query), 0)); got != want {
			t.Errorf("resetCommand(%q) = %q, want %q", query, got, want)
		}
	}
}

func TestServerSetRestoresWhatAnUndoneMessageRemoved(t *testing.T) {
	s := NewServerSet(3)
	s.Add("a", nil)
	s.Add("b", nil)
	s.MarkStale("b")
	saved := s.snapshot()
	s.Clear()
	s.Add("c", nil)
	s.restoreAll(saved)
	if got := strings.Join(lru(s), " "); got != "b a" || !s.Stale("b") || s.Has("c") {
		t.Fatalf("restoreAll left %q (b stale %v)", got, s.Stale("b"))
	}
	s.Remove("a")
	s.restore(serverStmt{name: "a"})
	s.restore(serverStmt{name: "b"}) // already held: unchanged
	if got := strings.Join(lru(s), " "); got != "b a" || !s.Stale("b") {
		t.Fatalf("restore left %q (b stale %v), want a back as least recently used", got, s.Stale("b"))
	}
}
