package app_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

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
			cfg := txnConfig(1)
			cfg.PoolMode, cfg.MaxPreparedStatements = m.mode, m.stmts
			_, url := startValve(t, cfg)
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
