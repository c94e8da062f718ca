package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// adminSetup runs pgvalve in transaction pooling with an admin user and
// returns it, a URL for clients and a console connection.
func adminSetup(t *testing.T, poolSize int) (*valvetest.Server, string, *pgx.Conn) {
	t.Helper()
	cfg := txnConfig(poolSize)
	cfg.AdminUsers = []string{"admin"}
	s, url := startValve(t, cfg)
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return s, url, admin
}

// inBackground runs sql on c in a goroutine; its outcome comes on the
// channel.
func inBackground(t *testing.T, c *pgx.Conn, sql string) <-chan error {
	done := make(chan error, 1)
	ctx := testutil.Context(t)
	go func() { _, err := c.Exec(ctx, sql); done <- err }()
	return done
}

// outcomeOf waits for a background statement's outcome.
func outcomeOf(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(testutil.WaitTimeout):
		t.Fatalf("%s never ended", what)
		return nil
	}
}

// PAUSE returns only once the open transaction has ended, then holds new
// requests in the queue with no server open; RESUME lets them run.
func TestPauseWaitsForTransactionsThenHoldsNewOnesUntilResume(t *testing.T) {
	s, url, admin := adminSetup(t, 2)
	ctx := testutil.Context(t)
	busy := connectTx(t, url)
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, busy, "select 1")

	paused := inBackground(t, admin, "PAUSE")
	testutil.Eventually(t, "the pool to be paused", func() bool { return poolView(t, s).Paused })
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned (%v) while a transaction was still open", err)
	default:
	}
	if _, err := tx.Exec(ctx, "select 2"); err != nil {
		t.Fatalf("the open transaction goes on under PAUSE: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := outcomeOf(t, paused, "PAUSE"); err != nil {
		t.Fatalf("PAUSE: %v", err)
	}
	if p := poolView(t, s); p.ServersActive != 0 || p.ServersIdle != 0 {
		t.Errorf("paused pool: %d active, %d idle servers; want none", p.ServersActive, p.ServersIdle)
	}

	held := inBackground(t, connectTx(t, url), "select 1")
	testutil.Eventually(t, "the new request to wait", func() bool { return poolView(t, s).ClientsWaiting == 1 })
	testutil.MustExec(t, admin, "RESUME")
	if err := outcomeOf(t, held, "the held request"); err != nil {
		t.Fatalf("the held request after RESUME: %v", err)
	}
	s.WaitIdle(t, 10*time.Second)
}

// KILL db ends its clients at once (57P01), whatever they were doing,
// closes its servers, and holds new clients' requests until RESUME db.
func TestKillDropsADatabasesClientsAndServersUntilResume(t *testing.T) {
	s, url, admin := adminSetup(t, 3)
	ctx := testutil.Context(t)
	inTx := connectTx(t, url)
	testutil.MustExec(t, inTx, "begin")
	testutil.MustExec(t, inTx, "select 1")
	idle := connectTx(t, url)
	testutil.MustExec(t, idle, "select 1")
	running := inBackground(t, connectTx(t, url), "select pg_sleep(60)")
	testutil.Eventually(t, "two servers in use", func() bool { return poolView(t, s).ServersActive == 2 })
	// Running in PostgreSQL, not just sent: a cancel that lands before the
	// query starts is ignored, and the sleep would outlive the test.
	pg := direct(t)
	testutil.Eventually(t, "the sleep to run", func() bool { return activeQueries(ctx, pg, "select pg_sleep(60)") == 1 })

	testutil.MustExec(t, admin, "KILL "+pgtest.TestDatabase)
	wantCode(t, outcomeOf(t, running, "the running query"), "57P01")
	_, err := inTx.Exec(ctx, "select 1")
	wantCode(t, err, "57P01")
	_, err = idle.Exec(ctx, "select 1")
	wantCode(t, err, "57P01")
	testutil.Eventually(t, "the database's servers to be closed", func() bool {
		n, err := backendsOf(ctx, direct(t), cluster.User)
		return err == nil && n == 0
	})

	later := inBackground(t, connectTx(t, url), "select 1")
	testutil.Eventually(t, "a new client's request to wait", func() bool { return poolView(t, s).ClientsWaiting == 1 })
	testutil.MustExec(t, admin, "RESUME "+pgtest.TestDatabase)
	if err := outcomeOf(t, later, "the request held after KILL"); err != nil {
		t.Fatalf("after RESUME: %v", err)
	}
	s.WaitIdle(t, 10*time.Second)
}

// KILL_CLIENT ends the one client SHOW CLIENTS names, and no other.
func TestKillClientEndsOnlyThatClient(t *testing.T) {
	_, url, admin := adminSetup(t, 2)
	ctx := testutil.Context(t)
	victim := connectTx(t, url+"&application_name=victim")
	bystander := connectTx(t, url+"&application_name=bystander")
	var id string
	for _, row := range show(t, admin, "SHOW CLIENTS") {
		if row["application_name"] == "victim" {
			id = row["id"]
		}
	}
	if id == "" {
		t.Fatal("SHOW CLIENTS does not list the victim")
	}
	testutil.MustExec(t, admin, "KILL_CLIENT "+id)
	_, err := victim.Exec(ctx, "select 1")
	wantCode(t, err, "57P01")
	testutil.MustExec(t, bystander, "select 1")
	_, err = admin.Exec(ctx, "KILL_CLIENT "+id)
	wantCode(t, err, "08P01")
}

// RECONNECT renews the servers: one in a transaction is closed once it is
// given back, WAIT_CLOSE returns only then, and the next request runs on a
// new backend.
func TestReconnectRenewsServersAfterTheirTransactionsAndWaitCloseWaitsForIt(t *testing.T) {
	s, url, admin := adminSetup(t, 2)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	testutil.MustExec(t, c, "begin")
	var before, after int
	if err := c.QueryRow(ctx, "select pg_backend_pid()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, admin, "RECONNECT")
	waited := inBackground(t, admin, "WAIT_CLOSE")
	testutil.MustExec(t, c, "select 1") // the transaction goes on, on its server
	select {
	case err := <-waited:
		t.Fatalf("WAIT_CLOSE returned (%v) while the server to renew was still in a transaction", err)
	default:
	}
	testutil.MustExec(t, c, "commit")
	if err := outcomeOf(t, waited, "WAIT_CLOSE"); err != nil {
		t.Fatalf("WAIT_CLOSE: %v", err)
	}
	if err := c.QueryRow(ctx, "select pg_backend_pid()").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Errorf("after RECONNECT the request ran on the old backend %d", before)
	}
	if n := poolView(t, s).ServersClosed["reconnect"]; n != 1 {
		t.Errorf("servers closed for reconnect: %d, want 1", n)
	}
}

// Admin commands on a database pgvalve does not serve are refused.
func TestAdminCommandsNameOnlyKnownDatabases(t *testing.T) {
	cfg := txnConfig(1)
	cfg.AdminUsers = []string{"admin"}
	cfg.Upstream = ""
	cfg.Databases = map[string]config.Database{pgtest.TestDatabase: {Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)}}
	s := valvetest.Start(t, cfg)
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"PAUSE nowhere", "KILL nowhere", "RECONNECT nowhere", "WAIT_CLOSE nowhere"} {
		_, err := admin.Exec(testutil.Context(t), cmd)
		if !strings.Contains(fmt.Sprint(err), "no such database: nowhere") {
			t.Errorf("%s: %v, want no such database", cmd, err)
		}
		wantCode(t, err, "08P01")
	}
}
