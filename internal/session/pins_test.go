package session

import (
	"testing"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

func TestPinsHoldWhileStateIsLeftAndCleanWhatTheyHold(t *testing.T) {
	var p pins
	step := func(q string) { p.apply(sqlscan.Effects(q), true) }
	step("select pg_advisory_lock(1); select pg_advisory_lock(1)")
	step("select pg_advisory_unlock(1)")
	if !p.pinned() || p.causes() != "advisory_lock" {
		t.Fatalf("one of two locks released: pinned %v (%q), want still pinned", p.pinned(), p.causes())
	}
	step("select pg_advisory_unlock( 1 )")
	if p.pinned() {
		t.Fatalf("both locks released: still pinned by %q", p.causes())
	}
	step("create temp table t(); declare c cursor with hold for select 1; listen ch")
	if sql, ok := p.cleanup(); !ok || sql != "CLOSE ALL; UNLISTEN *; DISCARD TEMP" {
		t.Fatalf("cleanup = %q, %v", sql, ok)
	}
	step("close c; unlisten *; discard temp")
	if p.pinned() {
		t.Fatalf("everything cleared: still pinned by %q", p.causes())
	}
	step("select pg_try_advisory_lock(9); discard all")
	if p.pinned() {
		t.Fatalf("DISCARD ALL unlocks everything: still pinned by %q", p.causes())
	}
	step("load 'auto_explain'")
	if _, ok := p.cleanup(); ok || !p.pinned() {
		t.Fatal("LOAD cannot be cleaned: the server must be closed")
	}
}

func TestOnlyQueriesThatMayLeaveStateAreLexed(t *testing.T) {
	for q, want := range map[string]bool{
		"select 1":                     false,
		"insert into t values (1)":     false,
		"SELECT PG_ADVISORY_LOCK(1)":   true,
		"create TEMPORARY table x ()":  true,
		"Listen x":                     true,
		"select * from holdings":       true, // a false alarm costs only the lexer
		"update accounts set balance=": false,
		"SET statement_timeout = 1":    true,
		"select 1; set a.b = 2":        true,
		"/* c */ set a.b = 2":          true,
		"select pg_catalog.set_config": true,
		"ReSeT all":                    true,
		"select settings from t":       false,
	} {
		if got := mayHaveEffects([]byte(q)); got != want {
			t.Errorf("mayHaveEffects(%q) = %v, want %v", q, got, want)
		}
	}
}
