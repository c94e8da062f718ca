package app_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"

	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// RESET and DISCARD ALL take a connection back to the settings its client
// asked for at startup, not to the server's own: the client hears exactly
// what PostgreSQL would tell it, SHOW answers the same, and the next
// client of that server, with the same startup settings, finds them there.
func TestResetAndDiscardAllGoBackToTheClientsStartupSettings(t *testing.T) {
	const startup = "&application_name=startup_app&timezone=Asia/Tokyo"
	show := exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SHOW application_name; SHOW TimeZone"}}, ready: 1}
	set := exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SET application_name = 'changed'; SET TimeZone = 'UTC'"}}, ready: 1}
	extended := func(sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	simple := func(sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, ready: 1}
	}
	steps := []exchange{
		set, simple("RESET ALL"), show,
		set, simple("RESET application_name"), show,
		set, simple("DISCARD ALL"), show,
		set, extended("DISCARD ALL"), show,
		set, extended("RESET ALL"), simple("DISCARD ALL"), show,
	}
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	want := converse(dialWire(t, owner+startup), steps)
	next := []exchange{show}
	wantNext := converse(dialWire(t, owner+startup), next)
	for _, m := range pooledModes {
		t.Run(m.name, func(t *testing.T) {
			_, url := m.start(t, 1)
			c := dialWire(t, url+startup)
			if got := converse(c, steps); got != want {
				t.Fatalf("through pgvalve:\n  %s\nPostgreSQL itself:\n  %s", got, want)
			}
			c.send(&pgproto3.Terminate{})
			if got := converse(dialWire(t, url+startup), next); got != wantNext {
				t.Fatalf("the next client: %s, want %s", got, wantNext)
			}
		})
	}
}

// A reset pipelined with a transaction that then rolls back: the client's
// settings are put back once the transaction is over, not inside it, where
// the ROLLBACK would take them away again in front of the client.
func TestAResetPipelinedWithARolledBackTransactionKeepsTheStartupSettings(t *testing.T) {
	const startup = "&application_name=startup_app"
	steps := []exchange{
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SET application_name = 'changed'"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "DISCARD ALL"}, &pgproto3.Query{String: "BEGIN"}}, ready: 2},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "select 1/0"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SHOW application_name"}}, ready: 1},
		// A reset inside a transaction is put back inside it.
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN; SET application_name = 'in_tx'"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "RESET ALL"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SHOW application_name"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}}, ready: 1},
		{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: "SHOW application_name"}}, ready: 1},
	}
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	want := converse(dialWire(t, owner+startup), steps)
	for _, m := range pooledModes {
		if m.mode == config.PoolStatement {
			continue // no transaction blocks there
		}
		t.Run(m.name, func(t *testing.T) {
			_, url := m.start(t, 1)
			if got := converse(dialWire(t, url+startup), steps); got != want {
				t.Fatalf("through pgvalve:\n  %s\nPostgreSQL itself:\n  %s", got, want)
			}
		})
	}
}
