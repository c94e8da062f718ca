package difftest_test

import (
	"fmt"
	"testing"

	"github.com/pgvalve/pgvalve/internal/difftest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// Fixed conversations for defects found or feared, each compared message
// for message with PostgreSQL like the generated ones.

var (
	sessionCell   = cells[0]
	txnCell       = cells[1] // tracking 200 statements
	txnSmallCell  = cells[2] // tracking 2 statements
	txnPlainCell  = cells[3] // no tracking
	statementCell = cells[4] // tracking 200 statements
)

// synced appends Sync to a batch.
func synced(batch []difftest.Msg) []difftest.Msg { return then(batch, difftest.Sync()) }

// runCase replays conv on a pgvalve of cell c with poolSize servers,
// reporting differences found on every step (see Replayer.KeepGoing).
func runCase(t *testing.T, c cell, poolSize int, conv difftest.Conversation) []*difftest.Difference {
	t.Helper()
	diffs := replay(t, c.start(t, poolSize), conv, true)
	report(t, c.name, diffs)
	return diffs
}

func TestAnInsertLongerThanTheReadBufferRunsOnceAndIsAnsweredAsPostgreSQLAnswersIt(t *testing.T) {
	for _, c := range []cell{txnCell, statementCell} {
		for _, n := range []int{20_000, 17_000, 64 << 10, 1 << 20, 8 << 20} {
			t.Run(fmt.Sprintf("%d characters in %s", n, c.name), func(t *testing.T) {
				insert := difftest.Query(difftest.BigQuery(n+6, 42, 0)) // header and NUL: n characters of SQL
				long := on(0, insert)
				long.Cuts = []int{1, 8191, 16383, 16385, n / 2} // the reader sees pieces around its buffer
				runCase(t, c, 2, conversation(
					long,
					on(0, difftest.Query("SELECT id, length(note) FROM t_items WHERE id = 42")),
					on(1, synced(run("s1", "SELECT count(*) FROM t_items"))...),
					on(0, synced(run("s1", "SELECT count(*) FROM t_items"))...),
				))
			})
		}
	}
}

// deallocations are the ways a client can drop prepared statements that
// pgvalve's tracking does not read: SQL sent through the extended protocol
// or run inside a function.
var deallocations = []struct {
	name  string
	batch []difftest.Msg
}{
	{"DEALLOCATE ALL through Parse, Bind and Execute", synced(run("", "DEALLOCATE ALL"))},
	{"DEALLOCATE name through Parse, Bind and Execute", synced(run("", "DEALLOCATE s1"))},
	{"DEALLOCATE PREPARE name through Parse, Bind and Execute", synced(run("", "DEALLOCATE PREPARE s1"))},
	{"DISCARD ALL through Parse, Bind and Execute", synced(run("", "DISCARD ALL"))},
	{"DEALLOCATE ALL inside a DO block", []difftest.Msg{difftest.Query("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")}},
}

// One server (pool size 1) is shared by three clients that prepared the
// same SQL; one of them drops its statements.
func TestADeallocationByOneClientIsSeenOnlyByThatClient(t *testing.T) {
	const sql = "SELECT $1::int + 100"
	for _, d := range deallocations {
		t.Run(d.name, func(t *testing.T) {
			diffs := runCase(t, txnCell, 1, conversation(
				on(1, synced(run("s1", sql, "1"))...),
				on(2, synced(run("s1", sql, "2"))...),
				on(0, synced(run("s1", sql, "3"))...),
				on(0, d.batch...),
				on(1, difftest.Bind("", "s1", "4"), difftest.Execute("", 0), difftest.Sync()),
				on(2, difftest.Describe('S', "s1"), difftest.Bind("", "s1", "5"), difftest.Execute("", 0), difftest.Sync()),
				on(0, difftest.Bind("", "s1", "6"), difftest.Execute("", 0), difftest.Sync()),
				on(1, synced(run("s2", sql, "7"))...),
			))
			for _, df := range diffs {
				if c := df.Conv.Steps[df.Step].Client; c != 0 && hasCode(df.Got, "26000") {
					t.Errorf("client %d, which deallocated nothing, got 26000 at step %d", c, df.Step)
				}
			}
		})
	}
}

// hasCode reports whether a reply holds an error with SQLSTATE code.
func hasCode(r difftest.Reply, code string) bool {
	for _, m := range r.Msgs {
		if m.Type == 'E' && difftest.ErrorCode(m) == code {
			return true
		}
	}
	return false
}

func TestABrandNewClientPreparesTheSameSQLAfterItsTableChangedTypeWithout0A000(t *testing.T) {
	const sql = "SELECT * FROM t_shape ORDER BY 1"
	for _, c := range []cell{txnCell, txnSmallCell} {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, 1, conversation(
				on(0, synced(run("s1", sql))...),
				on(0, difftest.Query("DROP TABLE t_shape; CREATE TABLE t_shape (v text); INSERT INTO t_shape VALUES ('a'), ('b')")),
				on(1, synced(run("s1", sql))...),
				on(2, synced(run("", sql))...),
				// PostgreSQL keeps failing the old statement with 0A000:
				// its result type was fixed when it was prepared.
				on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
				on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
				on(1, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
			))
		})
	}
}

func TestPipelinesKeepNamesAsPostgreSQLDoes(t *testing.T) {
	cases := []struct {
		name string
		conv difftest.Conversation
	}{
		{"a Parse that failed leaves its name free for a later Parse in the same pipeline", conversation(
			on(0, difftest.Parse("s1", "SELEC 1"), difftest.Sync(),
				difftest.Parse("s1", "SELECT 1"), difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
			on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
		)},
		{"a Parse skipped after an earlier error does not create its statement", conversation(
			on(0, difftest.Bind("", "nope"), difftest.Parse("s2", "SELECT 2"), difftest.Sync(),
				difftest.Bind("", "s2"), difftest.Execute("", 0), difftest.Sync()),
			on(0, synced(run("s2", "SELECT 2"))...),
		)},
		{"a Close skipped after an earlier error keeps its statement", conversation(
			on(0, synced(run("s3", "SELECT 3"))...),
			on(0, difftest.Bind("", "nope"), difftest.Close('S', "s3"), difftest.Sync(),
				difftest.Bind("", "s3"), difftest.Execute("", 0), difftest.Sync()),
		)},
	}
	for _, c := range []cell{sessionCell, txnCell, statementCell} {
		for _, tc := range cases {
			t.Run(tc.name+" in "+c.name, func(t *testing.T) { runCase(t, c, 2, tc.conv) })
		}
	}
}

func TestSyncAndFlushDuringAnExtendedProtocolCopyAreIgnoredAsPostgreSQLDoes(t *testing.T) {
	copyIn := on(0, difftest.Parse("", "COPY t_copy (a, b) FROM STDIN"), difftest.Bind("", ""), difftest.Describe('P', ""),
		difftest.Execute("", 0), difftest.Sync(),
		difftest.CopyData([]byte("1\tone\n")), difftest.Flush(), difftest.Sync(),
		difftest.CopyData([]byte("2\ttwo\n")), difftest.Sync(),
		difftest.CopyDone(), difftest.Sync())
	copyIn.Ready = 1 // the Syncs before CopyDone are part of the COPY
	for _, c := range []cell{sessionCell, txnCell, txnPlainCell, statementCell} {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, 1, conversation(copyIn, on(0, difftest.Query("SELECT a, b FROM t_copy ORDER BY a"))))
		})
	}
}

func TestACloseWithABadSubtypeIsAnsweredAsPostgreSQLAnswersIt(t *testing.T) {
	for _, c := range []cell{sessionCell, txnCell} {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, 1, conversation(
				on(0, difftest.Parse("s1", "SELECT 1"), difftest.Sync()),
				on(0, difftest.Close('X', "s1"), difftest.Sync()),
				on(0, difftest.Query("SELECT 2")),
				on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
			))
		})
	}
}

func TestQueriesOfSeveralStatementsAreAnsweredAsPostgreSQLAnswersThem(t *testing.T) {
	for _, c := range []cell{sessionCell, txnCell, statementCell} {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, 2, conversation(
				on(0, difftest.Query("SELECT 1; SELECT 2; SELECT 1/0; SELECT 3")),
				on(1, difftest.Query("INSERT INTO t_items VALUES (10, 'a'); UPDATE t_items SET note = 'b' WHERE id = 10; SELECT * FROM t_items WHERE id = 10")),
				on(0, difftest.Query("SELECT 1; SELEC 2")),
				on(1, difftest.Query("BEGIN; SELECT 1; COMMIT; SELECT 2")),
				on(0, difftest.Query("SET TimeZone = 'Asia/Tokyo'; SELECT timestamptz '2024-01-02 03:04:05+00'; RESET TimeZone")),
			))
		})
	}
}

func TestSQLLevelPrepareExecuteAndDeallocateMixWithProtocolStatementsAsInPostgreSQL(t *testing.T) {
	for _, c := range []cell{sessionCell, txnCell} {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, 1, conversation(
				on(0, difftest.Parse("s1", "SELECT 1"), difftest.Sync(),
					difftest.Query("PREPARE s2 AS SELECT 2; EXECUTE s2; DEALLOCATE s2; DEALLOCATE s1"),
					difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync()),
				on(0, difftest.Query("PREPARE q1 AS SELECT $1::int * 3"),
					difftest.Bind("", "q1", "5"), difftest.Execute("", 0), difftest.Sync(),
					difftest.Query("DEALLOCATE q1")),
				on(0, difftest.Parse("s3", "SELECT 3"), difftest.Sync(), difftest.Query("EXECUTE s3"),
					difftest.Query("DEALLOCATE ALL"), difftest.Bind("", "s3"), difftest.Execute("", 0), difftest.Sync()),
				// PREPARE is a name as well as DEALLOCATE's optional word.
				on(0, difftest.Parse("prepare", "SELECT 4"), difftest.Sync(), difftest.Query("DEALLOCATE prepare"),
					difftest.Bind("", "prepare"), difftest.Execute("", 0), difftest.Sync()),
			))
		})
	}
}

// pgvalve refuses a message over max_message_size by design, where
// PostgreSQL (whose limit is 1 GiB) runs it: the documented answer is a
// part of PostgreSQL's answer, then FATAL 08P01, then the end of the
// connection; other clients go on.
func TestAMessageOverMaxMessageSizeInATrackedPipelineIsRefusedWithFatal08P01ByDesign(t *testing.T) {
	const limit = 64 << 10
	cfg := txnCell.config(2)
	cfg.MaxMessageSize = limit
	setup(t)
	diffs := replay(t, valvetest.Start(t, cfg), conversation(
		on(0, synced(run("s1", "SELECT 1"))...),
		on(0, difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Sync(),
			difftest.Query(difftest.BigQuery(limit+1, 7, 1)), difftest.Sync()),
		on(1, synced(run("s1", "SELECT 1"))...),
	), true)
	if len(diffs) != 1 || diffs[0].Step != 1 {
		t.Fatalf("want one difference, at the oversized message's step; got %d", len(diffs))
	}
	got := diffs[0].Got
	if last := got.Msgs[len(got.Msgs)-1]; diffs[0].Index != len(got.Msgs)-1 || !difftest.IsFatal(last) || difftest.ErrorCode(last) != "08P01" {
		t.Fatalf("the oversized message was not refused as documented:\n%s", diffs[0])
	}
}
