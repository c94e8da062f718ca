package app_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// stopBackend freezes a server backend (SIGSTOP) until the test ends: a
// server that neither answers nor closes, like one behind a cut network.
func stopBackend(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
}

// idle_transaction_timeout ends a client idle inside a transaction with
// 25P03; its transaction is rolled back and its server serves the next
// client at once.
func TestIdleTransactionTimeoutFreesTheServer(t *testing.T) {
	cfg := txnConfig(1)
	cfg.IdleTransactionTimeout = 300 * time.Millisecond
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	testutil.MustExec(t, admin, "create table if not exists idle_tx_rows (tag text)")
	testutil.MustExec(t, admin, fmt.Sprintf("grant all on idle_tx_rows to %q", cluster.User))
	tag := fmt.Sprint(time.Now().UnixNano())

	c := dialRaw(t, s)
	c.login()
	c.simpleQuery("begin")
	c.simpleQuery("insert into idle_tx_rows values ('" + tag + "')")
	c.expectFatalThenEOF("25P03")

	next := connectTx(t, url)
	var n int
	if err := next.QueryRow(ctx, "select count(*) from idle_tx_rows where tag = $1", tag).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the timed-out transaction's row: count %d, %v; want rolled back", n, err)
	}
	// A client idle outside a transaction is left alone.
	time.Sleep(500 * time.Millisecond)
	testutil.MustExec(t, next, "select 1")
	next.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

// client_idle_timeout ends a client idle outside a transaction with 57P05.
func TestClientIdleTimeoutEndsAnIdleClient(t *testing.T) {
	cfg := txnConfig(1)
	cfg.ClientIdleTimeout = 300 * time.Millisecond
	s, _ := startValve(t, cfg)
	c := dialRaw(t, s)
	c.login()
	c.simpleQuery("select 1")
	c.expectFatalThenEOF("57P05")
	s.WaitIdle(t, 10*time.Second)
}

// query_timeout cancels a request that runs too long (57014, the client
// goes on); a server that ignores the cancel is given up on (08006, the
// client goes on with another server).
func TestQueryTimeoutCancelsThenGivesUpOnTheServer(t *testing.T) {
	cfg := txnConfig(2)
	cfg.QueryTimeout = 300 * time.Millisecond
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	_, err := c.Exec(ctx, "select pg_sleep(20)")
	wantError(t, err, "57014")
	pid := backendPID(t, c)
	stopBackend(t, pid)
	_, err = c.Exec(ctx, "select 1")
	wantError(t, err, "08006")
	if again := backendPID(t, c); again == pid {
		t.Fatalf("still on pid %d after giving up on it", pid)
	}
	c.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

// A client that leaves while queued for a server leaves the queue: its
// query never runs. pgx leaves by sending Terminate and waiting for the
// server to close; others just hang up.
func TestAClientThatLeavesTheQueueNeverRunsItsQuery(t *testing.T) {
	for _, leave := range []struct {
		name string
		do   func(c *rawConn)
	}{
		{"hangs up", func(c *rawConn) { _ = c.nc.Close() }},
		{"sends Terminate and waits", func(c *rawConn) { c.send(&pgproto3.Terminate{}) }},
	} {
		t.Run(leave.name, func(t *testing.T) {
			s, url := startValve(t, txnConfig(1))
			tag := fmt.Sprint(time.Now().UnixNano())
			holder, commit := holdTheOnlyServer(t, url)
			c := dialRaw(t, s)
			c.login()
			c.send(&pgproto3.Query{String: "insert into gone_rows values ('" + tag + "')"})
			waitQueue(t, s, 1)
			leave.do(c)
			waitQueue(t, s, 0)
			commit()
			testutil.MustExec(t, holder, "select 1") // the server went back and came to us
			wantNoRow(t, "gone_rows", tag)
		})
	}
}

// The wait watch keeps its timer between waits: a client that already
// waited once and was served is still watched in its next wait.
func TestAClientLeavingItsSecondWaitNeverRunsItsQuery(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	tag := fmt.Sprint(time.Now().UnixNano())
	holder, commit := holdTheOnlyServer(t, url)
	c := dialRaw(t, s)
	c.login()
	c.send(&pgproto3.Query{String: "select 1"})
	waitQueue(t, s, 1)
	commit()
	for { // served after its first wait
		if _, ok := c.receive().(*pgproto3.ReadyForQuery); ok {
			break
		}
	}

	// Long enough for the watch's timer to look once and find no wait
	// (it looks every 200ms): the second wait must start it again.
	time.Sleep(500 * time.Millisecond)
	ctx := testutil.Context(t)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, holder, "select 1")
	c.send(&pgproto3.Query{String: "insert into gone_rows values ('" + tag + "')"})
	waitQueue(t, s, 1)
	_ = c.nc.Close()
	waitQueue(t, s, 0)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, holder, "select 1")
	wantNoRow(t, "gone_rows", tag)
}

// A cancel for a request still queued takes it out of the queue: the
// client gets 57014 at once, the request never runs, the client goes on.
func TestACancelReachesARequestStillQueued(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	tag := fmt.Sprint(time.Now().UnixNano())
	holder, commit := holdTheOnlyServer(t, url)
	c := connectTx(t, url)
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "insert into gone_rows values ('"+tag+"')")
		done <- err
	}()
	waitQueue(t, s, 1)
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	wantError(t, <-done, "57014")
	waitQueue(t, s, 0)
	commit()
	testutil.MustExec(t, holder, "select 1")
	testutil.MustExec(t, c, "select 1")
	wantNoRow(t, "gone_rows", tag)
}

// holdTheOnlyServer opens a transaction on a pool of one; commit ends it.
func holdTheOnlyServer(t *testing.T, url string) (holder *pgx.Conn, commit func()) {
	t.Helper()
	admin := direct(t)
	testutil.MustExec(t, admin, "create table if not exists gone_rows (tag text)")
	testutil.MustExec(t, admin, fmt.Sprintf("grant all on gone_rows to %q", cluster.User))
	holder = connectTx(t, url)
	tx, err := holder.Begin(testutil.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, holder, "select 1")
	return holder, func() {
		if err := tx.Commit(testutil.Context(t)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitQueue(t *testing.T, s *valvetest.Server, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d clients queued", n), func() bool {
		st, _ := s.PoolStats(poolName())
		return st.ClientsWaiting == n
	})
}

func wantNoRow(t *testing.T, table, tag string) {
	t.Helper()
	var n int
	if err := direct(t).QueryRow(testutil.Context(t), "select count(*) from "+table+" where tag = $1", tag).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the query of a client that left or cancelled ran: %d rows, %v", n, err)
	}
}

// With server_check_delay 0 every reused server must answer an empty
// query first; a frozen one (which a peek cannot tell from a healthy one)
// is dropped and the client is served by another.
func TestServerCheckDropsAServerThatDoesNotAnswer(t *testing.T) {
	cfg := txnConfig(2)
	cfg.ServerCheckDelay = 0
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	pid := backendPID(t, c)
	stopBackend(t, pid)
	if again := backendPID(t, c); again == pid {
		t.Fatalf("still on pid %d after freezing it", pid)
	}
	c.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

// A client queued longer than query_wait_notify is told so with a NOTICE,
// and its query still runs once a server is free.
func TestAQueuedClientIsToldItIsWaiting(t *testing.T) {
	cfg := txnConfig(1)
	cfg.QueryWaitNotify = 300 * time.Millisecond
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	_, commit := holdTheOnlyServer(t, url)
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	notices := make(chan *pgconn.Notice, 4)
	pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices <- n }
	c, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	n := queuedNotice(t, s, c, notices, commit, "the first")
	if !strings.Contains(n.Message, "waiting in line") || !strings.Contains(n.Message, cluster.User) {
		t.Fatalf("notice %q does not say the client is queued in its pool", n.Message)
	}
	if len(notices) != 0 {
		t.Fatalf("%d more notices; one per wait", len(notices))
	}

	// A second wait is told too, after the watch's timer found no wait
	// (it looks every 200ms) and stopped.
	time.Sleep(500 * time.Millisecond)
	_, commit = holdTheOnlyServer(t, url)
	queuedNotice(t, s, c, notices, commit, "the second")
}

// queuedNotice runs a query on c while the only server is held, and
// returns the NOTICE it gets while queued; commit then frees the server,
// and the query must succeed. which names the wait in failures.
func queuedNotice(t *testing.T, s *valvetest.Server, c *pgx.Conn, notices <-chan *pgconn.Notice, commit func(), which string) *pgconn.Notice {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := c.Exec(testutil.Context(t), "select 1"); done <- err }()
	waitQueue(t, s, 1)
	var n *pgconn.Notice
	select {
	case n = <-notices:
	case err := <-done:
		t.Fatalf("%s query finished while the only server was held: %v", which, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no NOTICE in %s wait", which)
	}
	commit()
	if err := <-done; err != nil {
		t.Fatalf("%s queued query failed: %v", which, err)
	}
	return n
}
