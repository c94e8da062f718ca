package difftest_test

import (
	"testing"

	"github.com/pgvalve/pgvalve/internal/difftest"
)

// Session state in transaction pooling, compared with PostgreSQL: each
// client's settings, locks, temporary tables, cursors and LISTENs are its
// own across batches that may run on different servers, as they would be
// on a connection of its own.

// q is a step: client sends one simple Query.
func q(client int, sql string) difftest.Step { return on(client, difftest.Query(sql)) }

// notified is q whose answer holds n notifications, wherever they come.
func notified(client, n int, sql string) difftest.Step {
	st := q(client, sql)
	st.Ready, st.Notifies = 1, n
	return st
}

var sessionStateCases = []struct {
	name string
	conv difftest.Conversation
}{
	{"SET, SHOW and RESET across batches", conversation(
		q(0, "SET statement_timeout = '5s'"),
		q(1, "SHOW statement_timeout"),
		q(0, "SHOW statement_timeout"),
		q(0, "SET work_mem = '8MB'; SET myapp.user_id = 42"),
		// A server keeps a custom setting's name once any client set it:
		// another client reads '' where PostgreSQL would say NULL.
		q(1, "SELECT current_setting('work_mem'), coalesce(current_setting('myapp.user_id', true), '')"),
		q(0, "SELECT current_setting('work_mem'), current_setting('myapp.user_id')"),
		q(0, "RESET statement_timeout"),
		q(0, "SHOW statement_timeout"),
		q(0, "SHOW work_mem"),
		q(0, "SET TimeZone = 'Asia/Tokyo'"),
		q(1, "SELECT timestamptz '2024-01-02 03:04:05+00'::text"),
		q(0, "SELECT timestamptz '2024-01-02 03:04:05+00'::text"),
		q(0, "RESET ALL"),
		q(0, "SELECT current_setting('work_mem'), coalesce(current_setting('myapp.user_id', true), ''), current_setting('TimeZone')"),
		q(0, "SET statement_timeout = '3s'"),
		q(0, "DISCARD ALL"),
		q(0, "SHOW statement_timeout"),
	)},
	{"set_config(…, false) and SET LOCAL", conversation(
		q(0, "SELECT set_config('myapp.tenant', '7', false)"),
		q(1, "SELECT coalesce(current_setting('myapp.tenant', true), '')"),
		q(0, "SELECT current_setting('myapp.tenant')"),
		q(0, "BEGIN"),
		q(0, "SET LOCAL statement_timeout = '7s'"),
		q(0, "SELECT set_config('myapp.tenant', '8', true)"),
		q(0, "SHOW statement_timeout"),
		q(0, "COMMIT"),
		q(0, "SELECT current_setting('statement_timeout'), current_setting('myapp.tenant')"),
		q(0, "BEGIN; SET statement_timeout = '9s'; ROLLBACK"),
		q(0, "SHOW statement_timeout"),
	)},
	{"advisory locks", conversation(
		q(0, "SELECT pg_advisory_lock(72707369)"),
		q(1, "SELECT pg_try_advisory_lock(72707369)"),
		q(0, "BEGIN; SELECT 1; COMMIT"),
		q(0, "SELECT pg_advisory_lock(72707369)"), // a second hold, released twice
		q(0, "SELECT pg_advisory_unlock(72707369)"),
		q(1, "SELECT pg_try_advisory_xact_lock(72707369)"),
		q(0, "SELECT pg_advisory_unlock(72707369)"),
		q(0, "SELECT pg_advisory_unlock(72707369)"), // not held: false and a WARNING
		q(1, "SELECT pg_try_advisory_lock(72707369)"),
		q(1, "SELECT pg_advisory_unlock_all()"),
		q(0, "SELECT pg_try_advisory_lock(72707369)"),
		q(0, "SELECT pg_advisory_unlock(72707369)"),
	)},
	{"temporary tables", conversation(
		q(0, "CREATE TEMP TABLE tt (id int)"),
		q(0, "INSERT INTO tt VALUES (1), (2)"),
		q(1, "SELECT * FROM tt"),
		q(0, "BEGIN; INSERT INTO tt VALUES (3); COMMIT"),
		q(0, "SELECT id FROM tt ORDER BY id"),
		q(1, "CREATE TEMP TABLE tt (other text)"),
		q(1, "SELECT * FROM tt"),
		q(0, "DISCARD TEMP"),
		q(0, "SELECT * FROM tt"),
		q(1, "DROP TABLE tt"),
		q(1, "SELECT * FROM tt"),
	)},
	{"WITH HOLD cursors", conversation(
		q(0, "BEGIN; DECLARE cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g; COMMIT"),
		q(0, "FETCH 2 FROM cur"),
		q(1, "FETCH 1 FROM cur"),
		q(0, "BEGIN; FETCH 1 FROM cur; COMMIT"),
		q(0, "FETCH ALL FROM cur"),
		q(0, "CLOSE cur"),
		q(0, "FETCH 1 FROM cur"),
		q(0, "SELECT count(*) FROM pg_cursors"),
	)},
	{"LISTEN and NOTIFY to self and from another client", conversation(
		q(0, "LISTEN ev"),
		notified(0, 1, "NOTIFY ev, 'one'"),
		notified(0, 1, "SELECT pg_notify('ev', 'two')"),
		q(0, "BEGIN"),
		q(0, "NOTIFY ev, 'three'"),
		notified(0, 1, "COMMIT"),
		q(1, "NOTIFY ev, 'from client 1'"),
		notified(0, 1, "SELECT 1"),
		q(0, "UNLISTEN ev"),
		q(1, "NOTIFY ev, 'late'"),
		q(0, "LISTEN ev2"),
		q(1, "NOTIFY ev2, 'marker'"),
		notified(0, 1, "SELECT 2"),
		q(0, "UNLISTEN *"),
		q(0, "SELECT 3"),
	)},
}

func TestSessionStateIsEachClientsOwnAsInPostgreSQL(t *testing.T) {
	// Not without tracking: there pgvalve follows no session state (see
	// the package documentation).
	for _, c := range []cell{sessionCell, txnCell, txnSmallCell} {
		for _, tc := range sessionStateCases {
			t.Run(tc.name+" in "+c.name, func(t *testing.T) { runCase(t, c, 2, tc.conv) })
		}
	}
}

// Without statement tracking no client shares another's advisory lock,
// temporary table or cursor either.
func TestSessionStateWithoutTrackingIsEachClientsOwn(t *testing.T) {
	for _, tc := range sessionStateCases[2:5] {
		t.Run(tc.name, func(t *testing.T) { runCase(t, txnPlainCell, 2, tc.conv) })
	}
}
