package difftest_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/difftest"
)

var genOptions = difftest.Options{Clients: 3, Steps: 12, MaxSize: 3 << 20, Int4pl: 177}

func TestTheSameSeedMakesTheSameConversation(t *testing.T) {
	p := cells[1].profile
	a := difftest.Generate(difftest.NewRand(7, 3), p, genOptions)
	b := difftest.Generate(difftest.NewRand(7, 3), p, genOptions)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two conversations from one seed differ")
	}
	if c := difftest.Generate(difftest.NewRand(7, 4), p, genOptions); reflect.DeepEqual(a, c) {
		t.Fatal("conversations 3 and 4 of a seed are the same")
	}
}

func TestAnyFuzzInputMakesAFiniteConversation(t *testing.T) {
	for _, data := range [][]byte{nil, {0}, {255, 255, 255, 255, 255, 255, 255, 255}, []byte(strings.Repeat("\x07\x80", 500))} {
		conv := difftest.Generate(difftest.NewBytes(data), cells[0].profile, genOptions)
		if len(conv.Steps) == 0 || len(conv.Steps) > 2*genOptions.Steps+2*genOptions.Clients {
			t.Errorf("input %x made %d steps", data, len(conv.Steps))
		}
	}
}

// Each profile leaves out what its pool mode does not serve.
func TestConversationsKeepToWhatTheirPoolModeServes(t *testing.T) {
	o := genOptions
	o.MaxSize = 64 << 10 // sizes do not change what is sent, only how much
	for _, c := range cells {
		for i := range 60 {
			conv := difftest.Generate(difftest.NewRand(1, i), c.profile, o)
			for _, st := range conv.Steps {
				for _, m := range st.Batch {
					if problem := outOfProfile(c.profile, m); problem != "" {
						t.Fatalf("%s, conversation %d, %s: %s", c.name, i, st.What, problem)
					}
				}
			}
		}
	}
}

// beginStatement finds BEGIN as a statement, not inside a DO block.
var beginStatement = regexp.MustCompile(`(^|\x00|;\s*)(BEGIN|START TRANSACTION)\b`)

func outOfProfile(p difftest.Profile, m difftest.Msg) string {
	text := string(m.Body)
	switch {
	case !p.Transactions && (m.Type == 'Q' || m.Type == 'P') && beginStatement.MatchString(text):
		return "a transaction block in a mode that refuses them"
	case !p.Named && m.Type == 'P' && m.Body[0] != 0:
		return "a named statement without tracking"
	case !p.Sticky && (m.Type == 'Q' || m.Type == 'P') && strings.Contains(text, "search_path"):
		return "an unreported setting where the client changes servers"
	}
	return ""
}

func TestBigQueriesAreExactlyTheSizeAsked(t *testing.T) {
	for _, size := range []int{6, 7, 20, 60, 8187, 8192, 16379, 16384, 16385, 32768, 65536, 1 << 20} {
		for kind := range 3 {
			if got := difftest.Query(difftest.BigQuery(size, 1234567, kind)).Size(); got != size {
				t.Errorf("kind %d: a query asked to be %d bytes is %d", kind, size, got)
			}
		}
	}
}
