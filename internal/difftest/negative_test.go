package difftest_test

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/difftest"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// closeThenBind prepares s1, closes it and binds it again: PostgreSQL
// answers the Bind with 26000.
func closeThenBind() difftest.Conversation {
	return conversation(
		on(0, synced(run("s1", "SELECT 1"))...),
		on(0, difftest.Close('S', "s1"), difftest.Sync()),
		on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
	)
}

// The comparison must fail when pgvalve's statement bookkeeping misses a
// message. The knob renames the statement of every Close a client sends
// ("s1" becomes "x1") before the tracker reads the batch, so the tracker
// never sees s1 closed and binds it again where PostgreSQL says 26000.
func TestTheComparisonFailsWhenTheBookkeepingMissesAClose(t *testing.T) {
	var renamed atomic.Int32
	knobs := &session.Knobs{BeforeForward: func(span []byte) { renamed.Add(renameCloses(span)) }}
	diffs := replay(t, txnCell.startWithKnobs(t, 1, knobs), closeThenBind(), false)
	if renamed.Load() == 0 {
		t.Fatal("the knob never saw a Close: the test proves nothing")
	}
	if len(diffs) != 1 || diffs[0].Step != 2 || !hasCode(diffs[0].Want, "26000") {
		t.Fatalf("the missed Close went unnoticed: %d differences, want one at step 2 where PostgreSQL says 26000", len(diffs))
	}
	t.Logf("caught as expected:\n%s", diffs[0])
}

// Without the knob the same conversation passes, so the knob alone makes
// the difference above.
func TestTheSameConversationPassesWithoutTheKnob(t *testing.T) {
	report(t, txnCell.name, replay(t, txnCell.start(t, 1), closeThenBind(), false))
}

// renameCloses turns the first letter of the statement name of each whole
// Close message in span from 's' to 'x' and counts them.
func renameCloses(span []byte) int32 {
	var n int32
	for p := 0; p+5 <= len(span); {
		l := int(binary.BigEndian.Uint32(span[p+1:]))
		end := p + 1 + l
		if l < 4 || end > len(span) {
			return n
		}
		if span[p] == 'C' && l >= 6 && span[p+5] == 'S' && span[p+6] == 's' {
			span[p+6] = 'x'
			n++
		}
		p = end
	}
	return n
}

// The defect the differential test was written for: with the statement
// tracker made to skip messages bigger than the read buffer again
// (session.Knobs.SkipStreamedBookkeeping), the long INSERT's answer is no
// longer PostgreSQL's, and the comparison says so.
func TestTheComparisonFailsWhenTheTrackerSkipsALongQuery(t *testing.T) {
	long := on(0, difftest.Query(difftest.BigQuery(20_000+6, 42, 0)))
	conv := conversation(long, on(0, difftest.Query("SELECT id FROM t_items WHERE id = 42")))
	knobs := &session.Knobs{SkipStreamedBookkeeping: true}
	// session_state off: nothing reads a long Query whole, so it streams
	// through the tracker as it did in the bug report.
	setup(t)
	cfg := txnCell.config(2)
	cfg.SessionState = config.StateOff
	diffs := replay(t, valvetest.StartWithKnobs(t, cfg, knobs), conv, false)
	if len(diffs) == 0 || diffs[0].Step != 0 {
		t.Fatalf("the skipped long query went unnoticed: %d differences", len(diffs))
	}
	t.Logf("caught as expected:\n%s", diffs[0])
}
