package app_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
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
