package session

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// frames encodes client messages as the reader hands them to the relay.
func frames(t *testing.T, msgs ...pgproto3.FrontendMessage) []wire.Frame {
	t.Helper()
	var out []wire.Frame
	for _, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, wire.Frame{Type: b[0], Len: len(b) - 5, Body: b[5:]})
	}
	return out
}

// kindsRun lists the effects the frames run, in order.
func kindsRun(s *Session, fs []wire.Frame, commit bool) []sqlscan.Kind {
	var got []sqlscan.Kind
	s.effectsOf(fs, commit, func(_ wire.Frame, _ []byte, effects []sqlscan.Effect) {
		for _, e := range effects {
			got = append(got, e.Kind)
		}
	})
	return got
}

// A prepared statement's effects count when a Bind runs it, each time,
// and never at its Parse; a Close forgets it; a look ahead (commit false)
// sees the batch's own Parses without keeping them.
func TestEffectsCountWhenAStatementRunsNotWhenItIsPrepared(t *testing.T) {
	s := &Session{}
	lock := sqlscan.AdvisoryLock
	parse := frames(t, &pgproto3.Parse{Name: "lock", Query: "select pg_advisory_lock($1)"}, &pgproto3.Sync{})
	if got := kindsRun(s, parse, false); len(got) != 0 {
		t.Fatalf("a Parse ran %v", got)
	}
	if len(s.stmtFx) != 0 {
		t.Fatal("a look ahead kept the batch's Parse")
	}
	run := frames(t, &pgproto3.Bind{PreparedStatement: "lock"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	both := append(slices.Clone(parse), run...)
	if got := kindsRun(s, both, false); !slices.Equal(got, []sqlscan.Kind{lock}) {
		t.Fatalf("Parse and Bind in one batch ran %v, want one lock", got)
	}
	kindsRun(s, parse, true)
	for range 2 {
		if got := kindsRun(s, run, true); !slices.Equal(got, []sqlscan.Kind{lock}) {
			t.Fatalf("a Bind of the prepared statement ran %v, want one lock", got)
		}
	}
	kindsRun(s, frames(t, &pgproto3.Close{ObjectType: 'S', Name: "lock"}, &pgproto3.Sync{}), true)
	if got := kindsRun(s, run, true); len(got) != 0 {
		t.Fatalf("a Bind after the statement's Close ran %v", got)
	}
	plain := frames(t, &pgproto3.Parse{Name: "lock", Query: "select 1"}, &pgproto3.Bind{PreparedStatement: "lock"})
	kindsRun(s, plain, true)
	if len(s.stmtFx) != 0 {
		t.Fatal("a statement without effects is kept")
	}
}

// A SQL PREPAREd statement pins until its DEALLOCATE, and a client that
// leaves with one has it deallocated under the name PostgreSQL gave it.
func TestASQLPreparedStatementPinsUntilDeallocated(t *testing.T) {
	var p pins
	p.apply(sqlscan.Effects(`PREPARE Mine AS SELECT 1; PREPARE "Odd""Name" AS SELECT 2`), true)
	if p.causes() != "sql_prepare" {
		t.Fatalf("causes = %q, want sql_prepare", p.causes())
	}
	if sql, ok := p.cleanup(); !ok || sql != `DEALLOCATE "Odd""Name"; DEALLOCATE "mine"` {
		t.Fatalf("cleanup = %q, %v", sql, ok)
	}
	p.apply(sqlscan.Effects(`DEALLOCATE mine; deallocate prepare "Odd""Name"`), true)
	if p.pinned() {
		t.Fatalf("still pinned after both DEALLOCATEs: %q", p.causes())
	}
}

// The cheap test the hot path runs first never hides an effect the lexer
// would find: whatever the text, Effects finding one implies
// mayHaveEffects said yes.
func FuzzThePrefilterNeverHidesAnEffect(f *testing.F) {
	for _, q := range []string{
		"LISTEN a", "unlisten *", "select pg_advisory_lock(1)", "SELECT pg_try_advisory_lock_shared(1, 2)",
		"select pg_advisory_unlock_all()", "create temp table t ()", "CREATE TEMPORARY VIEW v AS SELECT 1",
		"discard temp", "DISCARD ALL", "set a = 1", "SET SESSION work_mem TO '1MB'", "set role x",
		"set session authorization y", "SET TIME ZONE 'UTC'", "reset all", "select set_config('a.b', 'c', false)",
		"prepare p as select 1", "deallocate p", "DEALLOCATE PREPARE ALL", "declare c cursor with hold for select 1",
		"close c", "close all", "load 'auto_explain'", "select 1;\nset a = 2", "/* x */ set a = 3", "begin; set b = 4; commit",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if effects := sqlscan.Effects(q); len(effects) > 0 && !mayHaveEffects([]byte(q)) {
			t.Fatalf("mayHaveEffects(%q) = false, but Effects finds %v", q, effects)
		}
	})
}

// What detection costs the hot path: the prefilter over a pgbench query,
// and over a 1 MiB INSERT padded with a comment, which it must read whole.
func BenchmarkThePrefilter(b *testing.B) {
	for _, c := range []struct{ name, q string }{
		{"pgbench_update", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"},
		{"pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"},
		{"insert_1MiB", "insert into t values (1) /*" + strings.Repeat("x", 1<<20) + "*/"},
	} {
		q := []byte(c.q)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(q)))
			for b.Loop() {
				if mayHaveEffects(q) {
					b.Fatal("no effect here")
				}
			}
		})
	}
}
