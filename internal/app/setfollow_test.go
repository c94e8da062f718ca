package app_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// settingOf is current_setting(name) as q's server has it ("" when it
// is not defined there).
func settingOf(t *testing.T, q *pgx.Conn, name string) string {
	t.Helper()
	var v *string
	if err := q.QueryRow(testutil.Context(t), "select current_setting($1, true)", name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return ""
	}
	return *v
}

// expectSetting checks over n transactions that c always sees name as
// want, and returns how many servers it ran on.
func expectSetting(t *testing.T, c *pgx.Conn, name, want string, n int) int {
	t.Helper()
	pids := map[int]bool{}
	for i := range n {
		if got := settingOf(t, c, name); got != want {
			t.Fatalf("transaction %d (backend %d): %s = %q, want %q", i, backendPID(t, c), name, got, want)
		}
		pids[backendPID(t, c)] = true
	}
	return len(pids)
}

// SET statement_timeout sticks for its client across 100 transactions
// on different servers, while 10 clients keep the pool of 2 busy, and
// never applies to another client.
func TestASessionSetFollowsItsClientAcrossServersAndNoOneElse(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c := connectTx(t, url)
	other := connectTx(t, url)
	testutil.MustExec(t, c, "SET statement_timeout = '5s'")
	pids := map[int]bool{}
	for i := range 100 {
		if got := settingOf(t, c, "statement_timeout"); got != "5s" {
			t.Fatalf("transaction %d: statement_timeout = %q, want 5s", i, got)
		}
		pids[backendPID(t, c)] = true
		if got := settingOf(t, other, "statement_timeout"); got != "0" {
			t.Fatalf("transaction %d: another client sees statement_timeout = %q, want 0", i, got)
		}
	}
	if len(pids) < 2 {
		t.Fatalf("all 100 transactions ran on one server (%v): the test proves nothing", pids)
	}
	stop()
	if n := expectSetting(t, other, "statement_timeout", "0", 20); n == 0 {
		t.Fatal("no transaction ran")
	}
}

// A custom setting and set_config(…, false) follow their client; RESET,
// RESET ALL and DISCARD ALL undo what they set, on every server after.
func TestCustomSettingsAndSetConfigFollowUntilReset(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c := connectTx(t, url)
	other := connectTx(t, url)
	testutil.MustExec(t, c, "SET myapp.user_id = 42")
	testutil.MustExec(t, c, "select set_config('search_path', 'x', false)")
	testutil.MustExec(t, c, "set statement_timeout to '5s'")
	expectSetting(t, c, "myapp.user_id", "42", 30)
	expectSetting(t, c, "search_path", "x", 30)
	expectSetting(t, other, "myapp.user_id", "", 10)
	expectSetting(t, other, "search_path", `"$user", public`, 10)

	testutil.MustExec(t, c, "RESET statement_timeout")
	expectSetting(t, c, "statement_timeout", "0", 20)
	expectSetting(t, c, "myapp.user_id", "42", 20)

	testutil.MustExec(t, c, "RESET ALL")
	expectSetting(t, c, "myapp.user_id", "", 20)
	expectSetting(t, c, "search_path", `"$user", public`, 20)

	testutil.MustExec(t, c, "SET statement_timeout = '5s'")
	expectSetting(t, c, "statement_timeout", "5s", 20)
	testutil.MustExec(t, c, "DISCARD ALL")
	expectSetting(t, c, "statement_timeout", "0", 20)
}

// SET LOCAL and a SET rolled back with its transaction end with it: the
// client's next transactions, on whatever server, do not have them.
func TestSetLocalAndRolledBackSetsDoNotFollow(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c := connectTx(t, url)
	testutil.MustExec(t, c, "begin; set local statement_timeout = '7s'; commit")
	expectSetting(t, c, "statement_timeout", "0", 20)
	testutil.MustExec(t, c, "begin")
	testutil.MustExec(t, c, "set statement_timeout = '9s'")
	testutil.MustExec(t, c, "rollback")
	expectSetting(t, c, "statement_timeout", "0", 20)
	if _, err := c.Exec(testutil.Context(t), "set statement_timeout = 'nonsense'"); err == nil {
		t.Fatal("a bad value was accepted")
	}
	expectSetting(t, c, "statement_timeout", "0", 20)
	testutil.MustExec(t, c, "begin; set statement_timeout = '3s'; commit")
	expectSetting(t, c, "statement_timeout", "3s", 20)
}

// A set_config whose name is a bind parameter cannot be replayed on
// another server: the client keeps its server until RESET ALL.
func TestASetConfigPgvalveCannotReadPinsItsClient(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	c := connectTx(t, url)
	if _, err := c.Exec(testutil.Context(t), "select set_config($1, $2, false)", "myapp.tenant", "7"); err != nil {
		t.Fatal(err)
	}
	if got := clientPin(t, s); got != "unknown_setting" {
		t.Fatalf("pin = %q, want unknown_setting", got)
	}
	expectSetting(t, c, "myapp.tenant", "7", 10)
	testutil.MustExec(t, c, "RESET ALL")
	if got := clientPin(t, s); got != "" {
		t.Fatalf("pin after RESET ALL = %q, want none", got)
	}
	other := connectTx(t, url)
	expectSetting(t, other, "myapp.tenant", "", 10)
}

// A client that leaves with settings of its own leaves none of them to
// the next client of its server.
func TestAClientLeavingWithSettingsLeavesNoneBehind(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	c := connectTx(t, url)
	testutil.MustExec(t, c, "SET statement_timeout = '5s'; select set_config('myapp.user_id', '42', false)")
	pid := backendPID(t, c)
	if err := c.Close(testutil.Context(t)); err != nil {
		t.Fatal(err)
	}
	s.WaitIdle(t, 10*time.Second)
	next := connectTx(t, url)
	if got := backendPID(t, next); got != pid {
		t.Fatalf("the next client got backend %d, want %d", got, pid)
	}
	expectSetting(t, next, "statement_timeout", "0", 5)
	expectSetting(t, next, "myapp.user_id", "", 5)
}
