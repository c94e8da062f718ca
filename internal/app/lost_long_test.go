package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// smuggled is a Query message, as bytes a client might put inside a string
// literal: if pgvalve ever forwarded the middle of a message as messages,
// PostgreSQL would run it.
func smuggled(sql string) string {
	return string(testutil.Message('Q', sql+"\x00"))
}

// A client whose server went while it sat in a transaction learns of it
// with its next request, whatever that request's size: a query longer than
// the read buffer gets 08006, and none of it, not the middle of its text
// either, reaches another server.
func TestALongQueryAfterTheTransactionWasLostGoesNowhere(t *testing.T) {
	owner := newTable(t, "smuggle", "v int")
	for _, size := range []int{wire.DefaultBufferSize + 1, 20000, 1 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			ctx := testutil.Context(t)
			s, url := startValve(t, txnConfig(1))
			c := connectSimple(t, url)
			testutil.MustExec(t, c, "begin")
			terminate(t, direct(t), backendPID(t, c))
			testutil.Eventually(t, "pgvalve to notice", func() bool {
				st, _ := s.PoolStats(poolName())
				return st.ServersActive == 0
			})
			// The literal holds whole Query messages at every 4 KiB, so a
			// piece forwarded from any buffer boundary would run one.
			inner := smuggled("rollback") + smuggled("insert into smuggle values (42)")
			text := strings.Repeat(strings.Repeat("x", 4096-len(inner))+inner, size/4096+1)
			sql := "select length('" + strings.ReplaceAll(text, "'", "''")[:size] + "')"
			_, err := c.Exec(ctx, sql)
			if pgErr := wantCode(t, err, "08006"); !strings.Contains(pgErr.Message, "rolled back") {
				t.Fatalf("the long query: %q", pgErr.Message)
			}
			if tag, err := c.Exec(ctx, "rollback"); err != nil || tag.String() != "ROLLBACK" {
				t.Fatalf("rollback: %q, %v", tag, err)
			}
			if _, err := c.Exec(ctx, "select 1"); err != nil {
				t.Fatalf("after: %v", err)
			}
			var n int
			if err := owner.QueryRow(ctx, "select count(*) from smuggle").Scan(&n); err != nil || n != 0 {
				t.Fatalf("rows smuggled in: %d, %v", n, err)
			}
		})
	}
}

// A statement pgvalve prepares on a new server before the client's Bind
// can wait (on a lock); if that server goes meanwhile, the client's
// request is answered 08006 at once, as any request of a lost server.
func TestAServerLostWhilePreparingAClientsStatementAnswersTheClient(t *testing.T) {
	ctx := testutil.Context(t)
	owner := newTable(t, "locked_for_parse", "v int")
	_, url := startValve(t, txnConfig(1))
	c := testutil.Connect(t, url) // pgx's statement cache: named statements
	const sql = "select count(*) from locked_for_parse where v > $1"
	var n int
	if err := c.QueryRow(ctx, sql, 0).Scan(&n); err != nil {
		t.Fatal(err)
	}
	admin := direct(t)
	pid := backendPID(t, c)
	terminate(t, admin, pid)
	testutil.Eventually(t, "the idle server to go", func() bool {
		var gone bool
		return admin.QueryRow(ctx, "select not exists (select from pg_stat_activity where pid = $1)", pid).Scan(&gone) == nil && gone
	})
	locker, err := owner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.Background())
	if _, err := locker.Exec(ctx, "lock table locked_for_parse in access exclusive mode"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.QueryRow(ctx, sql, 0).Scan(&n) }()
	var waiting int
	testutil.Eventually(t, "pgvalve's Parse to wait on the lock", func() bool {
		err := admin.QueryRow(ctx, `select pid from pg_stat_activity where usename = $1
			and wait_event_type = 'Lock' and backend_type = 'client backend'`, cluster.User).Scan(&waiting)
		return err == nil
	})
	terminate(t, admin, waiting)
	select {
	case err := <-done:
		if pgErr := wantCode(t, err, "08006"); !strings.Contains(pgErr.Message, "may have run") {
			t.Fatalf("the request: %q", pgErr.Message)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client got no answer after its server went")
	}
	_ = locker.Rollback(ctx)
	if err := c.QueryRow(ctx, sql, 0).Scan(&n); err != nil {
		t.Fatalf("the next request: %v", err)
	}
}
