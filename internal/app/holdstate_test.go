package app_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// changesServers reports whether c runs on more than one backend within
// n statements (other clients keeping the pool busy).
func changesServers(t *testing.T, c *pgx.Conn, n int) bool {
	t.Helper()
	first := backendPID(t, c)
	for range n {
		if backendPID(t, c) != first {
			return true
		}
	}
	return false
}

// staysOnServer checks that c's next n statements all run on one backend,
// and returns it.
func staysOnServer(t *testing.T, c *pgx.Conn, n int) int {
	t.Helper()
	pid := backendPID(t, c)
	for i := range n {
		if got := backendPID(t, c); got != pid {
			t.Fatalf("statement %d ran on backend %d, not %d: the client left its state behind", i, got, pid)
		}
	}
	return pid
}

// wantPin checks the one pinned client's pin ("" for none).
func wantPin(t *testing.T, s *valvetest.Server, want string) {
	t.Helper()
	if got := clientPin(t, s); got != want {
		t.Fatalf("pin = %q, want %q", got, want)
	}
}

// A WITH HOLD cursor lives for its client across transactions while 10
// clients keep a pool of 2 busy; another client cannot fetch from it or
// see it; CLOSE ends the pin and the client changes servers again.
func TestAHoldCursorFollowsItsClientUntilClosed(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c, other := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, c, "begin; declare held cursor with hold for select g from generate_series(1, 100) g; commit")
	wantPin(t, s, "hold_cursor")
	pid := staysOnServer(t, c, 5)
	for i := range 10 {
		var got int
		if err := c.QueryRow(testutil.Context(t), "fetch 1 from held").Scan(&got); err != nil || got != 10*i+1 {
			t.Fatalf("fetch %d: %d, %v; want %d", i, got, err, 10*i+1)
		}
		testutil.MustExec(t, c, "begin; move 9 in held; commit")
		if got := backendPID(t, c); got != pid {
			t.Fatalf("fetch %d ran on backend %d, not %d", i, got, pid)
		}
		wantPin(t, s, "hold_cursor")
		_, err := other.Exec(testutil.Context(t), "fetch 1 from held")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "34000" {
			t.Fatalf("another client's fetch from the cursor: %v, want 34000", err)
		}
	}
	testutil.MustExec(t, c, "close held")
	wantPin(t, s, "")
	if !changesServers(t, c, 200) {
		t.Fatal("the client kept its server after CLOSE")
	}
}

// A temporary table's pin ends with DISCARD TEMP (or DISCARD ALL), not
// with DROP TABLE: pgvalve cannot tell that the last one went, so the
// client keeps its server, the safe side.
func TestATempTablePinEndsWithDiscardTemp(t *testing.T) {
	for _, end := range []string{"discard temp", "discard all"} {
		t.Run(end, func(t *testing.T) {
			s, url := startValve(t, txnConfig(2))
			stop := busy(t, url, 10)
			defer stop()
			c := connectTx(t, url)
			testutil.MustExec(t, c, "create temp table scratch (id int)")
			for i := range 20 {
				testutil.MustExec(t, c, fmt.Sprintf("begin; insert into scratch values (%d); commit", i))
			}
			wantPin(t, s, "temp_table")
			staysOnServer(t, c, 5)
			testutil.MustExec(t, c, "drop table scratch")
			wantPin(t, s, "temp_table")
			staysOnServer(t, c, 5)
			testutil.MustExec(t, c, end)
			wantPin(t, s, "")
			if !changesServers(t, c, 200) {
				t.Fatalf("the client kept its server after %s", end)
			}
		})
	}
}
