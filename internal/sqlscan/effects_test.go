package sqlscan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func show(es []Effect) string {
	var b []string
	for _, e := range es {
		s := e.Kind.String()
		if e.Name != "" {
			s += " " + e.Name
		}
		if e.Value != "" {
			s += "=" + e.Value
		}
		if !e.Known {
			s += " (unknown)"
		}
		b = append(b, s)
	}
	return strings.Join(b, "; ")
}

func TestEffectsFindTheSessionStateEachStatementLeaves(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{"LISTEN orders", "listen orders"},
		{`listen "Orders"`, "listen Orders"},
		{"UNLISTEN orders; UNLISTEN *", "unlisten orders; unlisten *"},
		{"unlisten", "unlisten *"},
		{"SELECT pg_advisory_lock(72707369)", "advisory_lock 72707369"},
		{"select 1, pg_catalog.pg_try_advisory_lock( 7 , 1 ) from t", "advisory_lock 7,1"},
		{"select pg_advisory_xact_lock(1)", ""},
		{"SELECT pg_advisory_unlock(72707369)", "advisory_unlock 72707369"},
		{"select pg_advisory_unlock_all()", "advisory_unlock_all"},
		{"select x from (select pg_advisory_lock_shared($1)) s", "advisory_lock $1"},
		{"select 'pg_advisory_lock(1)', \"pg_advisory_lock\" -- pg_advisory_lock(2)\n /* pg_advisory_lock(3) */", ""},
		{"select E'it\\'s pg_advisory_lock(1)'", ""},
		{"do $$ begin perform pg_advisory_lock(1); end $$", ""},
		{"CREATE TEMP TABLE t (id int)", "temp_object"},
		{"create global temporary table t (id int)", "temp_object"},
		{"create or replace temp view v as select 1", "temp_object"},
		{"create table temp (id int)", ""},
		{"DISCARD TEMP", "discard_temp"},
		{"discard all", "discard_all"},
		{"discard plans", ""},
		{"SET statement_timeout = '5s'", "set statement_timeout='5s'"},
		{"set SESSION search_path TO public, app", "set search_path=public, app"},
		{"set myapp.User_Id = 42", "set myapp.user_id=42"},
		{"set myapp.user_id TO 42", "set myapp.user_id=42"},
		{"set \"my\".x=tomato", "set my.x=tomato"},
		{"SET LOCAL statement_timeout = 0", ""},
		{"set transaction isolation level serializable", ""},
		{"set session characteristics as transaction read only", ""},
		{"SET TIME ZONE 'UTC'", "set timezone='UTC'"},
		{"set role app_reader", "set role=app_reader"},
		{"set session authorization alice", "set session_authorization=alice"},
		{"RESET statement_timeout", "reset statement_timeout"},
		{"reset all", "reset"},
		{"select set_config('search_path', 'app', false)", "set search_path='app'"},
		{"select set_config('search_path', 'app', true)", ""},
		{"select set_config($1, $2, false)", "set=$2 (unknown)"},
		{"PREPARE q (int) AS SELECT $1", "prepare q"},
		{"prepare transaction 'x'", ""},
		{"DEALLOCATE PREPARE q; deallocate all", "deallocate q; deallocate"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", "hold_cursor c"},
		{"declare c no scroll cursor without hold for select 1", ""},
		{"declare c cursor for select 1", ""},
		{"CLOSE c; close all", "close_cursor c; close_cursor"},
		{"LOAD 'auto_explain'", "load"},
		{"select 1; listen a; select pg_advisory_lock(2)", "listen a; advisory_lock 2"},
	} {
		if got := show(Effects(tc.q)); got != tc.want {
			t.Errorf("Effects(%q) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

func FuzzEffects(f *testing.F) {
	for _, q := range []string{"SET a = 1; LISTEN b", "select pg_advisory_lock(1, 2)", "select set_config('a', $$x$$, false)",
		"declare c cursor with hold for select 1", "select E'\\'' || pg_advisory_lock(1)", `set "a"."b" to 1`} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		es := Effects(q)
		for i, e := range es {
			if e.Kind == 0 || e.Pos < 0 || e.Pos > len(q) || i > 0 && e.Pos < es[i-1].Pos {
				t.Fatalf("Effects(%q) = %+v", q, es)
			}
		}
		// Effects is a function of the text: the same answer twice.
		if again := Effects(q); !reflect.DeepEqual(es, again) {
			t.Fatal(fmt.Sprint("not deterministic on ", q))
		}
	})
}
