package sqlscan

import (
	"slices"
	"testing"
)

func words(sts []Statement) [][]string {
	var out [][]string
	for _, st := range sts {
		var ws []string
		for _, w := range st.Words {
			ws = append(ws, w.Name())
		}
		out = append(out, ws)
	}
	return out
}

func TestStatementsSplitWhereThePostgresLexerWould(t *testing.T) {
	for _, tc := range []struct {
		name, q string
		want    [][]string
	}{
		{"one statement", "DEALLOCATE PREPARE s1", [][]string{{"deallocate", "prepare", "s1"}}},
		{"several, with empty ones", "select 1;; DEALLOCATE s1 ;", [][]string{{"select"}, {"deallocate", "s1"}}},
		{"a semicolon in a string", "select 'a;b'; execute s1", [][]string{{"select"}, {"execute", "s1"}}},
		{"a semicolon in a dollar quote", "do $x$ begin execute 'deallocate all'; end $x$; prepare p as select 1",
			[][]string{{"do"}, {"prepare", "p", "as"}}},
		{"comments hide words", "/* execute s1; /* nested; */ */ select 1 -- ; execute s2\n", [][]string{{"select"}}},
		{"quoted names keep their case", `EXECUTE "S1"(1); Deallocate S1`, [][]string{{"execute", "S1"}, {"deallocate", "s1"}}},
		{"words stop at a literal", "select 'x' from t", [][]string{{"select"}}},
		{"a semicolon in parentheses", "create rule r as on insert to t do (select 1; select 2); execute s", [][]string{{"create", "rule", "r"}, {"execute", "s"}}},
		{"an unterminated string swallows the rest", "select 'a; execute s1", [][]string{{"select"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := words(Statements(tc.q, 3)); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("Statements(%q) = %q, want %q", tc.q, got, tc.want)
			}
		})
	}
}

func TestHighestParamSkipsWhatIsQuoted(t *testing.T) {
	for q, want := range map[string]int{
		"select $1 + $12":                      12,
		"select '$5', \"$6\", $2":              2,
		"select $$ $9 $$, $tag$ $8 $tag$, $3":  3,
		"select 1 -- $4\n /* $7 */":            0,
		"select a$1 from t":                    0,
		"insert into t values ($1), ($2::int)": 2,
	} {
		if got := HighestParam(q); got != want {
			t.Errorf("HighestParam(%q) = %d, want %d", q, got, want)
		}
	}
}

func TestFirstWordIs(t *testing.T) {
	if !FirstWordIs("  /* c */ Rollback to s", "commit", "rollback") || FirstWordIs("select 1", "commit") || FirstWordIs("", "x") {
		t.Fatal("FirstWordIs")
	}
}

func TestStatementsSayWhereTheyAndTheirWordsAre(t *testing.T) {
	q := `select 1; /* c */ DEALLOCATE "S 1" ; execute s2`
	sts := Statements(q, 3)
	if len(sts) != 3 {
		t.Fatalf("%d statements", len(sts))
	}
	for _, tc := range []struct {
		st         int
		text, word string
		w          int
	}{{0, "select 1", "select", 0}, {1, `/* c */ DEALLOCATE "S 1" `, `"S 1"`, 1}, {2, "execute s2", "s2", 1}} {
		st := sts[tc.st]
		if got := q[st.Start:st.End]; got != tc.text {
			t.Errorf("statement %d is %q, want %q", tc.st, got, tc.text)
		}
		if w := st.Words[tc.w]; q[w.Pos:w.End] != tc.word {
			t.Errorf("statement %d word %d is %q, want %q", tc.st, tc.w, q[w.Pos:w.End], tc.word)
		}
	}
}

// FuzzStatements: any text is read without panic, every word found is a
// word that appears in the text where it says, and statements are in
// order inside the text.
func FuzzStatements(f *testing.F) {
	for _, s := range []string{"select 1; execute s1", "do $$ ; $$", `"a""b"`, "/* /* */", "(((", "$1$2$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		at := 0
		for _, st := range Statements(q, 4) {
			if st.Start < at || st.End < st.Start || st.End > len(q) {
				t.Fatalf("statement at %d..%d after %d in %d bytes", st.Start, st.End, at, len(q))
			}
			at = st.End
			for _, w := range st.Words {
				if w.Pos < st.Start || w.End > st.End || !w.Quoted && q[w.Pos:w.End] != w.Text {
					t.Fatalf("word %q at %d..%d is not where it says in %q", w.Text, w.Pos, w.End, q)
				}
			}
		}
		_ = HighestParam(q)
	})
}

func TestWordsTakeOnlyAStatementMadeOfWords(t *testing.T) {
	for q, want := range map[string][]string{
		"DEALLOCATE PREPARE s1":            {"deallocate", "prepare", "s1"},
		" /* a /* b */ */ discard all ;; ": {"discard", "all"},
		"deallocate \"S 1\" -- the end":    {"deallocate", "S 1"},
		"deallocate a b c":                 nil, // more than max
		"deallocate 's1'":                  nil,
		"deallocate s1; select 1":          nil,
		"deallocate s1 /* unterminated":    nil,
		"deallocate \"s1":                  nil,
		"deallocate \"\"":                  nil,
		"deallocate s1(":                   nil,
		"":                                 nil,
		"; ;":                              nil,
	} {
		got, ok := Words(q, 3)
		if ok != (want != nil) {
			t.Errorf("Words(%q) ok = %v, want %v", q, ok, want != nil)
			continue
		}
		var names []string
		for _, w := range got {
			names = append(names, w.Name())
		}
		if !slices.Equal(names, want) {
			t.Errorf("Words(%q) = %q, want %q", q, names, want)
		}
	}
}
