package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// terminate ends a backend from the admin connection.
func terminate(t *testing.T, admin *pgx.Conn, pid int) {
	t.Helper()
	var ok bool
	if err := admin.QueryRow(testutil.Context(t), "select pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
	}
}

// wantError asserts err is an ERROR (not FATAL) with the SQLSTATE: the
// client may go on.
func wantError(t *testing.T, err error, code string) {
	t.Helper()
	if pgErr := wantCode(t, err, code); pgErr.Severity != "ERROR" {
		t.Fatalf("got %v, want ERROR with SQLSTATE %s", err, code)
	}
}

// backendPID is the PostgreSQL backend serving q's next statement.
func backendPID(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRow(testutil.Context(t), "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// In transaction pooling a lost server costs the client its request or
// transaction, never its connection: it gets 08006 (or, inside a
// transaction, 25P02 until it ends it), and goes on on another server;
// the dead server is closed, and nothing is sent twice.
func TestALostServerGivesItsClientAnErrorAndTheClientGoesOn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		inTx       bool // the client opened a transaction first
		midRequest bool // the server dies while a request runs
		commit     bool // the client's next statement is COMMIT
	}{
		{"autocommit request running", false, true, false},
		{"transaction with a request running", true, true, false},
		{"transaction idle", true, false, false},
		{"transaction idle, then COMMIT", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := startValve(t, txnConfig(2))
			ctx := testutil.Context(t)
			admin := direct(t)
			testutil.MustExec(t, admin, "create table if not exists lost_rows (tag text)")
			testutil.MustExec(t, admin, fmt.Sprintf("grant all on lost_rows to %q", cluster.User))
			c := connectTx(t, url)
			tag := fmt.Sprintf("%s-%d", tc.name, time.Now().UnixNano())
			if tc.inTx {
				testutil.MustExec(t, c, "begin")
				if _, err := c.Exec(ctx, "insert into lost_rows values ($1)", tag); err != nil {
					t.Fatal(err)
				}
			}
			pid := backendPID(t, c)
			var err error
			if tc.midRequest {
				running := backgroundQuery(ctx, c, "select pg_sleep(30)")
				testutil.Eventually(t, "the query to run", func() bool {
					return activeQueries(ctx, admin, "select pg_sleep(30)") == 1
				})
				terminate(t, admin, pid)
				err = (<-running).err
				// Its fate is unknown, and the client is told so.
				if pgErr := wantCode(t, err, "08006"); !strings.Contains(pgErr.Message, "the statement may have run") {
					t.Fatalf("the lost request's error does not say it may have run: %q", pgErr.Message)
				}
			} else {
				terminate(t, admin, pid)
				testutil.Eventually(t, "pgvalve to notice and close the server", func() bool {
					st, _ := s.PoolStats(poolName())
					return st.ServersActive == 0
				})
			}
			switch {
			case tc.commit:
				// A COMMIT cannot commit what was lost: an error, and the
				// transaction is over.
				_, err = c.Exec(ctx, "commit")
				wantError(t, err, "08006")
			case tc.inTx:
				// The transaction is gone: the client hears why with its
				// next statement if it has not yet, then, like any aborted
				// transaction, it refuses statements until the client ends it.
				if !tc.midRequest {
					_, err = c.Exec(ctx, "insert into lost_rows values ($1)", tag+"-first")
					wantError(t, err, "08006")
				}
				_, err = c.Exec(ctx, "insert into lost_rows values ($1)", tag+"-after")
				wantError(t, err, "25P02")
				if tag, err := c.Exec(ctx, "commit"); err != nil || tag.String() != "ROLLBACK" {
					t.Fatalf("commit of the lost transaction: %q %v; want ROLLBACK", tag, err)
				}
			}
			if newPID := backendPID(t, c); newPID == pid {
				t.Fatalf("after the loss the client is still on pid %d", pid)
			}
			var rows int
			if err := admin.QueryRow(ctx, "select count(*) from lost_rows where tag like $1", tag+"%").Scan(&rows); err != nil || rows != 0 {
				t.Fatalf("%d rows of the lost transaction committed (%v); want 0", rows, err)
			}
			c.Close(ctx)
			s.WaitIdle(t, 10*time.Second)
			if st, _ := s.PoolStats(poolName()); st.ServersActive != 0 {
				t.Fatalf("pool after the loss: %+v", st)
			}
		})
	}
}
