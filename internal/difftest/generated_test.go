package difftest_test

import (
	"fmt"
	"testing"

	"github.com/pgvalve/pgvalve/internal/difftest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// TestEveryAnswerThroughPgvalveEqualsPostgreSQLsOwn replays generated
// conversations in every pool mode and tracking setting and compares every
// answer with what PostgreSQL sends a direct connection. The seed and the
// count are flags (see main_test.go); a failure says how to replay it.
func TestEveryAnswerThroughPgvalveEqualsPostgreSQLsOwn(t *testing.T) {
	for _, c := range cells {
		t.Run(c.name, func(t *testing.T) {
			s := c.start(t, *flagClients)
			for i := range *flagN {
				t.Run(fmt.Sprintf("conversation %d", i), func(t *testing.T) {
					conv := difftest.Generate(difftest.NewRand(*flagSeed, i), c.profile, options())
					label := fmt.Sprintf("seed %d, conversation %d, %s (replay: go test ./internal/difftest -run '%s' -args -difftest.seed=%d)",
						*flagSeed, i, c.name, t.Name(), *flagSeed)
					diffs := replay(t, s, conv, false)
					report(t, label, diffs)
					for _, d := range diffs {
						t.Logf("the conversation up to that step:\n%s", conv.Summary(d.Step))
					}
				})
			}
		})
	}
}

// FuzzConversation drives the generator with fuzz input: the first byte
// picks the matrix cell, the rest makes every choice. It needs the
// PostgreSQL cluster TestMain starts:
//
//	go test -run '^$' -fuzz FuzzConversation ./internal/difftest
func FuzzConversation(f *testing.F) {
	servers := make([]*valvetest.Server, len(cells))
	for i, c := range cells {
		servers[i] = c.start(f, *flagClients)
	}
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 3, 7, 1, 9, 200, 17, 4, 4, 2, 90, 14, 3, 3, 3, 77, 1, 0, 5})
	f.Add([]byte{5, 255, 2, 12, 40, 3, 1, 1, 8, 16, 0, 200, 6, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		k := int(data[0]) % len(cells)
		o := options()
		o.MaxSize = min(o.MaxSize, 1<<20) // keeps each input quick
		conv := difftest.Generate(difftest.NewBytes(data[1:]), cells[k].profile, o)
		diffs := replay(t, servers[k], conv, false)
		report(t, fmt.Sprintf("fuzz input %x, %s", data, cells[k].name), diffs)
		for _, d := range diffs {
			t.Logf("the conversation up to that step:\n%s", conv.Summary(d.Step))
		}
	})
}
