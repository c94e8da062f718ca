package app_test

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

func copyData(s string) *pgproto3.CopyData { return &pgproto3.CopyData{Data: []byte(s)} }

// libpq's PQexecParams of a COPY sends Sync right after Execute, and
// another after CopyDone; PostgreSQL ignores Sync and Flush until the COPY
// ends. pgvalve once expected an answer to each, lost count and dropped
// the server.
func TestSyncAndFlushDuringAnExtendedCopyAreIgnoredAsPostgresDoes(t *testing.T) {
	const setup = "drop table if exists copy_sync; create table copy_sync (v int)"
	copyIn := []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: "copy copy_sync from stdin"}, &pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{},
	}
	count := exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "select count(*) from copy_sync"}}, ready: 1}
	t.Run("libpq's Sync before the data", func(t *testing.T) {
		sameAsPostgres(t, setup, []exchange{
			{send: copyIn, stopAtCopy: true},
			{send: []pgproto3.FrontendMessage{copyData("1\n"), copyData("2\n"), &pgproto3.CopyDone{}, &pgproto3.Sync{}}, ready: 1},
			count,
		})
	})
	t.Run("Syncs and Flushes between the rows", func(t *testing.T) {
		sameAsPostgres(t, setup, []exchange{
			{send: copyIn, stopAtCopy: true},
			{send: []pgproto3.FrontendMessage{copyData("1\n"), &pgproto3.Sync{}, &pgproto3.Flush{}, copyData("2\n"),
				&pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}, ready: 1},
			count,
		})
	})
	t.Run("a COPY the client fails", func(t *testing.T) {
		sameAsPostgres(t, setup, []exchange{
			{send: copyIn, stopAtCopy: true},
			{send: []pgproto3.FrontendMessage{copyData("1\n"), &pgproto3.Sync{}, &pgproto3.CopyFail{Message: "changed my mind"},
				&pgproto3.Sync{}}, ready: 1},
			count,
		})
	})
	t.Run("a CopyDone sent apart from its Sync, after a bad row", func(t *testing.T) {
		sameAsPostgres(t, setup, []exchange{
			{send: copyIn, stopAtCopy: true},
			{send: []pgproto3.FrontendMessage{copyData("x\n"), &pgproto3.CopyDone{}}, settle: 200 * time.Millisecond},
			{send: []pgproto3.FrontendMessage{&pgproto3.Sync{}}, ready: 1},
			count,
		})
	})
	t.Run("a COPY that never begins answers its Sync", func(t *testing.T) {
		sameAsPostgres(t, "", []exchange{
			{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "copy no_such_table from stdin"}, &pgproto3.Bind{},
				&pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1},
			{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "select 1"}}, ready: 1},
		})
	})
}

// PostgreSQL answers a Close or Describe it cannot read with a recoverable
// ERROR and skips to Sync; pgvalve once ended the client with FATAL.
func TestABadCloseOrDescribeIsARecoverableErrorAsInPostgres(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  pgproto3.FrontendMessage
	}{
		{"Close with subtype X", &pgproto3.Close{ObjectType: 'X', Name: "s1"}},
		{"Describe with subtype X", &pgproto3.Describe{ObjectType: 'X', Name: "s1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameAsPostgres(t, "", []exchange{{send: []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "s1", Query: "select 1"}, tc.msg,
				&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			}, ready: 2}})
		})
	}
}

// A pipeline whose later Sync groups name a statement an earlier group
// prepared or closed: pgvalve must not decide what those names mean until
// PostgreSQL has said whether the earlier group failed.
func TestPipelinedStatementsFollowTheEarlierGroupsFate(t *testing.T) {
	parse := func(name, sql string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: sql} }
	bind := func(name string) *pgproto3.Bind { return &pgproto3.Bind{PreparedStatement: name} }
	sync, exec := &pgproto3.Sync{}, &pgproto3.Execute{}
	for _, tc := range []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"a Parse that failed leaves its name free for the next group",
			[]pgproto3.FrontendMessage{parse("s1", "select nope"), sync, parse("s1", "select 1"), bind("s1"), exec, sync}},
		{"a Parse skipped after an error does not make the name",
			[]pgproto3.FrontendMessage{bind("missing"), parse("s1", "select 1"), sync, bind("s1"), exec, sync}},
		{"a Close in an earlier group removes the name for the next",
			[]pgproto3.FrontendMessage{parse("s1", "select 1"), sync, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, sync, bind("s1"), exec, sync}},
		{"a duplicate name's syntax error comes first",
			[]pgproto3.FrontendMessage{parse("s1", "select 1"), sync, parse("s1", "selec 2"), sync, parse("s1", "select 2"), sync}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := 0
			for _, m := range tc.msgs {
				if _, ok := m.(*pgproto3.Sync); ok {
					ready++
				}
			}
			sameAsPostgres(t, "", []exchange{{send: tc.msgs, ready: ready}})
		})
	}
}

// A message over max_message_size ends the client with FATAL 08P01, as
// PostgreSQL ends one past its own limit, and, as PostgreSQL does, only
// after answering what came before it in the pipeline: those statements
// ran, and their answers say so.
func TestAMessageOverTheLimitEndsTheClientAfterAnsweringWhatCameBefore(t *testing.T) {
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	runSetup(t, owner, "drop table if exists over_limit; create table over_limit (v int)")
	for _, m := range pooledModes {
		t.Run(m.name, func(t *testing.T) {
			runSetup(t, owner, "truncate over_limit")
			cfg := txnConfig(2)
			cfg.PoolMode, cfg.MaxPreparedStatements, cfg.MaxMessageSize = m.mode, m.stmts, 4096
			s, url := startValve(t, cfg)
			c := dialWire(t, url)
			c.send(&pgproto3.Query{String: "insert into over_limit values (1)"},
				&pgproto3.Parse{Query: "insert into over_limit values (2)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.Query{String: "select '" + strings.Repeat("x", 8192) + "'"})
			got := c.until(2, false)
			if want := "C(INSERT 0 1) ZI ParseComplete BindComplete C(INSERT 0 1) ZI"; got != want {
				t.Fatalf("before the oversized message: %s, want %s", got, want)
			}
			msg, err := c.fe.Receive()
			if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "08P01" || e.Severity != "FATAL" {
				t.Fatalf("then: %#v %v, want FATAL 08P01", msg, err)
			}
			if _, err := c.fe.Receive(); err == nil {
				t.Fatal("the connection stays open after the FATAL")
			}
			c2 := dialWire(t, owner)
			c2.send(&pgproto3.Query{String: "select count(*) from over_limit"})
			if rows := c2.until(1, false); !strings.Contains(rows, "D(2)") {
				t.Fatalf("rows: %s, want both inserts", rows)
			}
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

// The answers to what came before an oversized message reach the client
// even when the server side has counted them and not yet written them as
// the client side gives up on the client: ending the link then once cut
// that write short, and the client heard only its FATAL. The knob holds
// the first delivery while the oversized message arrives.
func TestAnswersCountedButNotYetRelayedReachTheClientBeforeItsFatal(t *testing.T) {
	readyIdle := []byte{'Z', 0, 0, 0, 5, 'I'}
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	runSetup(t, owner, "drop table if exists over_held; create table over_held (v int)")
	for _, m := range pooledModes {
		t.Run(m.name, func(t *testing.T) {
			var held atomic.Bool
			holding := make(chan struct{})
			knobs := &session.Knobs{BeforeDeliver: func(span []byte) {
				if bytes.HasSuffix(span, readyIdle) && held.CompareAndSwap(false, true) {
					close(holding)
					time.Sleep(time.Second)
				}
			}}
			cfg := txnConfig(2)
			cfg.PoolMode, cfg.MaxPreparedStatements, cfg.MaxMessageSize = m.mode, m.stmts, 4096
			s := valvetest.StartWithKnobs(t, cfg, knobs)
			c := dialWire(t, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
			c.send(&pgproto3.Query{String: "insert into over_held values (1)"})
			select {
			case <-holding:
			case <-time.After(10 * time.Second):
				t.Fatal("the server side never delivered an answer")
			}
			c.send(&pgproto3.Query{String: "select '" + strings.Repeat("x", 8192) + "'"})
			if got := c.until(1, false); got != "C(INSERT 0 1) ZI" {
				t.Fatalf("before the oversized message: %s, want its insert's answer", got)
			}
			msg, err := c.fe.Receive()
			if e, ok := msg.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "08P01" {
				t.Fatalf("then: %#v %v, want FATAL 08P01", msg, err)
			}
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

// A client's next batch can be read while the last answer to its previous
// one is on its way; if that answer hands the server back (a safe point)
// after the client side took the server for the new batch, the batch must
// go to the server the client gets next, not to the one in the pool. The
// knob holds the second batch until the server is back in the pool.
func TestABatchTakenForAServerThatWentBackGoesToTheNextServer(t *testing.T) {
	var calls atomic.Int32
	var s *valvetest.Server
	knobs := &session.Knobs{BeforeForward: func([]byte) {
		if calls.Add(1) != 2 {
			return
		}
		for range 200 { // until the first answer handed the server back, at most 2 s
			if st, _ := s.PoolStats(poolName()); st.ServersActive == 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}}
	s = valvetest.StartWithKnobs(t, txnConfig(1), knobs)
	c := dialWire(t, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	c.send(&pgproto3.Query{String: "select pg_sleep(0.2)"})
	time.Sleep(50 * time.Millisecond) // a read of its own for the next batch
	c.send(&pgproto3.Query{String: "select 2"})
	if got := c.until(2, false); !strings.Contains(got, "D(2)") {
		t.Fatalf("answers: %s", got)
	}
	if calls.Load() < 2 {
		t.Fatal("the knob never held a batch: the test proves nothing")
	}
}
