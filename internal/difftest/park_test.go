package difftest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/difftest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// TestAnswersStayPostgreSQLsWhenIdleClientsPark replays generated
// conversations with a pause before every step, through a pgvalve that
// parks a client idle for a millisecond: every client parks between its
// steps, and the goroutine that resumes it must carry on exactly where the
// parked one stopped (prepared statements, settings, transactions lost
// with a server, half-sent pipelines).
func TestAnswersStayPostgreSQLsWhenIdleClientsPark(t *testing.T) {
	n := max(*flagN/4, 3)
	for _, c := range cells {
		if c.mode == config.PoolSession {
			continue // session pooling holds its server: its clients never park
		}
		t.Run(c.name, func(t *testing.T) {
			setup(t)
			cfg := c.config(*flagClients)
			cfg.ClientParkDelay = time.Millisecond
			s := valvetest.Start(t, cfg)
			for i := range n {
				t.Run(fmt.Sprintf("conversation %d", i), func(t *testing.T) {
					conv := difftest.Generate(difftest.NewRand(*flagSeed+1000, i), c.profile, options())
					label := fmt.Sprintf("seed %d, conversation %d, %s, parking (replay: go test ./internal/difftest -run '%s' -args -difftest.seed=%d)",
						*flagSeed, i, c.name, t.Name(), *flagSeed)
					diffs := replayPaused(t, s, conv, false, 30*time.Millisecond)
					report(t, label, diffs)
					for _, d := range diffs {
						t.Logf("the conversation up to that step:\n%s", conv.Summary(d.Step))
					}
				})
			}
			if _, parks := s.App.Parking(); parks == 0 {
				t.Fatal("no client ever parked: the comparison proved nothing about parking")
			}
		})
	}
}
