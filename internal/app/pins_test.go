package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// lockHolder is the PostgreSQL backend holding advisory lock key, or 0.
func lockHolder(t *testing.T, su *pgx.Conn, key int64) int {
	t.Helper()
	var pid int
	err := su.QueryRow(testutil.Context(t), `select coalesce(max(pid), 0) from pg_locks
		where locktype = 'advisory' and granted and (classid::bigint << 32 | objid::bigint) = $1`, key).Scan(&pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// busy keeps n clients running short transactions through url until
// stop closes, so the pool's servers change hands all the time.
func busy(t *testing.T, url string, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		c := connectTx(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				_, _ = c.Exec(ctx, "select pg_sleep(0.001)")
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// An advisory-lock migration (lock, several transactions, unlock), as
// prisma migrate runs it, works in transaction pooling while 20 other
// clients share the other server: the client keeps the server holding
// its lock until it unlocks, and then gives it back.
func TestAnAdvisoryLockKeepsItsClientOnItsServerUntilUnlocked(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	su := direct(t)
	stop := busy(t, url, 20)
	defer stop()
	const key = 72707369
	m := connectTx(t, url)
	testutil.MustExec(t, m, "select pg_advisory_lock(72707369)")
	holder := lockHolder(t, su, key)
	if holder == 0 {
		t.Fatal("the lock is not held")
	}
	for i := range 10 {
		testutil.MustExec(t, m, "begin; select 1; commit")
		if pid := backendPID(t, m); pid != holder {
			t.Fatalf("transaction %d ran on backend %d, not on %d which holds the lock", i, pid, holder)
		}
	}
	if got := clientPin(t, s); got != "advisory_lock" {
		t.Errorf("the console shows the pin as %q, want advisory_lock", got)
	}
	var unlocked bool
	if err := m.QueryRow(testutil.Context(t), "select pg_advisory_unlock(72707369)").Scan(&unlocked); err != nil || !unlocked {
		t.Fatalf("unlock: %v, %v; want true (on the server that holds it)", unlocked, err)
	}
	stop()
	s.WaitIdle(t, 10*time.Second) // the server went back once unlocked
	if clientPin(t, s) != "" {
		t.Error("still pinned after the unlock")
	}
}

// A client that leaves holding advisory locks, a temporary table, a WITH
// HOLD cursor and a LISTEN leaves nothing on its server for the next.
func TestAClientThatLeavesPinnedLeavesNothingBehind(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	su := direct(t)
	c := connectTx(t, url)
	testutil.MustExec(t, c, "select pg_advisory_lock(4242)")
	testutil.MustExec(t, c, "create temp table left_behind (id int)")
	testutil.MustExec(t, c, "begin; declare held cursor with hold for select 1; commit")
	testutil.MustExec(t, c, "listen left_channel")
	pid := backendPID(t, c)
	if err := c.Close(testutil.Context(t)); err != nil {
		t.Fatal(err)
	}
	s.WaitIdle(t, 10*time.Second)
	if lockHolder(t, su, 4242) != 0 {
		t.Fatal("the advisory lock outlived its client")
	}
	next := connectTx(t, url)
	if got := backendPID(t, next); got != pid {
		t.Fatalf("the next client got backend %d, want the cleaned %d", got, pid)
	}
	var table, cursors, listens int
	err := next.QueryRow(testutil.Context(t), `select
		(select count(*) from pg_class where relname = 'left_behind' and relpersistence = 't'),
		(select count(*) from pg_cursors where name = 'held'), (select count(*) from pg_listening_channels())`).Scan(&table, &cursors, &listens)
	if err != nil || table+cursors+listens != 0 {
		t.Fatalf("the next client finds %d temp tables, %d cursors, %d listens (%v); want none", table, cursors, listens, err)
	}
}

// A temporary table lives for its client across transactions, and other
// clients never see it.
func TestATempTableFollowsItsClientAndNoOneElseSeesIt(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c := connectTx(t, url)
	testutil.MustExec(t, c, "create temp table mine (id int)")
	for i := range 50 {
		testutil.MustExec(t, c, "insert into mine values (1)")
		_ = i
	}
	var n int
	if err := c.QueryRow(testutil.Context(t), "select count(*) from mine").Scan(&n); err != nil || n != 50 {
		t.Fatalf("count = %d, %v; want 50", n, err)
	}
	other := connectTx(t, url)
	for range 20 {
		var found *string
		if err := other.QueryRow(testutil.Context(t), "select to_regclass('mine')::text").Scan(&found); err != nil || found != nil {
			t.Fatalf("another client sees the temp table: %v, %v", found, err)
		}
	}
	testutil.MustExec(t, c, "discard temp")
}

// LISTEN in transaction pooling: the listening client keeps its server,
// so notifications other clients send reach it.
func TestListenInTransactionPoolingReceivesNotifications(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	l := connectTx(t, url)
	testutil.MustExec(t, l, "listen jobs")
	sender := connectTx(t, url)
	for i := range 5 {
		testutil.MustExec(t, sender, "select pg_notify('jobs', 'job "+string(rune('0'+i))+"')")
	}
	for i := range 5 {
		ctx, cancel := context.WithTimeout(testutil.Context(t), 10*time.Second)
		n, err := l.WaitForNotification(ctx)
		cancel()
		if err != nil || n.Payload != "job "+string(rune('0'+i)) {
			t.Fatalf("notification %d: %v, %v", i, n, err)
		}
	}
}

// clientPin is the pin of the one client that has one, as the app's
// list of sessions shows it.
func clientPin(t *testing.T, s *valvetest.Server) string {
	t.Helper()
	for _, in := range s.App.Sessions() {
		if in.Pin != "" {
			return in.Pin
		}
	}
	return ""
}
