package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// waitQuery waits for a background query to end and fails on its error.
func waitQuery(t *testing.T, done <-chan queryResult, what string) {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitPool waits until the named pool's stats (the retired one when
// retired is true) satisfy cond; a missing pool is given as ok=false.
func waitPool(t *testing.T, s *valvetest.Server, name string, retired bool, what string, cond func(st app.PoolStats, ok bool) bool) {
	t.Helper()
	var last []app.PoolStats
	testutil.Eventually(t, what, func() bool {
		last = s.App.Stats()
		for _, st := range last {
			if st.Name == name && st.Draining == retired {
				return cond(st, true)
			}
		}
		return cond(app.PoolStats{}, false)
	})
}

func countBackends(t *testing.T, admin *pgx.Conn) int {
	t.Helper()
	n, err := backendsOf(testutil.Context(t), admin, cluster.User)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReloadGrowsAPoolForWaitingClientsAndShrinksItWithoutDroppingAny(t *testing.T) {
	cfg := sessionConfig(1)
	cfg.Listen = "127.0.0.1:0" // as valvetest runs it, so that only pool_size differs
	cfg.QueryWaitTimeout = 0   // wait as long as it takes
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	first := testutil.Connect(t, url)
	testutil.MustExec(t, first, "select 1") // holds the only server (session pooling)
	second := testutil.Connect(t, url)
	done := backgroundQuery(ctx, second, "select 1")
	waitPool(t, s, pgtest.TestDatabase+"/"+cluster.User, false, "the second client to queue", func(st app.PoolStats, ok bool) bool {
		return ok && st.ClientsWaiting == 1
	})

	cfg.PoolSize = 2
	changes := s.App.Reload(cfg)
	if len(changes) != 1 || changes[0].Key != "pool_size" || changes[0].Old != "1" || changes[0].New != "2" {
		t.Fatalf("changes %v, want pool_size 1 → 2", changes)
	}
	waitQuery(t, done, "the waiting client's query once the pool grew")
	if n := countBackends(t, admin); n != 2 {
		t.Fatalf("%d backends, want 2 after growing the pool", n)
	}

	cfg.PoolSize = 1
	s.App.Reload(cfg)
	testutil.MustExec(t, first, "select 1") // a shrink ends no client
	testutil.MustExec(t, second, "select 1")
	first.Close(ctx)
	testutil.Eventually(t, "the server over the new size to close", func() bool { return countBackends(t, admin) == 1 })
	testutil.MustExec(t, second, "select 1")
}

func TestReloadAddsARouteAndRetiresARemovedOneWithoutDroppingItsClient(t *testing.T) {
	cfg := txnConfig(2) // the old client needs its retired pool for every transaction
	cfg.Upstream = ""
	cfg.Databases = map[string]config.Database{
		"alpha": {Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)},
	}
	s, _ := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	old := connectTx(t, s.URL(cluster.User, cluster.Password, "alpha"))
	testutil.MustExec(t, old, "select 1")

	cfg.Databases = map[string]config.Database{
		"beta": {Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)},
	}
	s.App.Reload(cfg)
	name := "alpha/" + cluster.User
	waitPool(t, s, name, true, "alpha's pool to be retired", func(st app.PoolStats, ok bool) bool { return ok })
	testutil.MustExec(t, old, "select 1") // the connected client keeps its route

	_, err := pgx.Connect(ctx, s.URL(cluster.User, cluster.Password, "alpha"))
	wantCode(t, err, "3D000")
	beta := connectTx(t, s.URL(cluster.User, cluster.Password, "beta"))
	testutil.MustExec(t, beta, "select 1")

	testutil.MustExec(t, old, "select 1")
	old.Close(ctx)
	waitPool(t, s, name, true, "the retired pool to close after its last client", func(_ app.PoolStats, ok bool) bool { return !ok })
	testutil.Eventually(t, "only beta's server to stay", func() bool { return countBackends(t, admin) == 1 })
}

func TestReloadedUpstreamServesNewClientsWhileConnectedOnesKeepTheOld(t *testing.T) {
	cfg := txnConfig(2)
	cfg.Upstream = ""
	cfg.Databases = map[string]config.Database{
		pgtest.TestDatabase: {Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)},
	}
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	old := connectTx(t, url)
	currentDB := func(c *pgx.Conn) string {
		var db string
		if err := c.QueryRow(ctx, "select current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		return db
	}
	if db := currentDB(old); db != pgtest.TestDatabase {
		t.Fatalf("before the reload: %s", db)
	}
	cfg.Databases = map[string]config.Database{
		pgtest.TestDatabase: {Upstream: cluster.URL(cluster.User, cluster.Password, "postgres"), PoolMode: config.PoolSession},
	}
	s.App.Reload(cfg)
	if db := currentDB(old); db != pgtest.TestDatabase {
		t.Fatalf("a connected client must keep its route: now on %s", db)
	}
	fresh := testutil.Connect(t, url)
	if db := currentDB(fresh); db != "postgres" {
		t.Fatalf("a new client must get the new upstream: on %s", db)
	}
	st, _ := s.PoolStats(pgtest.TestDatabase + "/" + cluster.User)
	if st.Mode != config.PoolSession || st.Draining {
		t.Fatalf("the new pool: %+v; want session pooling, not retired", st)
	}
}

func TestReloadedTimeoutsReachClientsAlreadyConnected(t *testing.T) {
	cfg := txnConfig(2)
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	sleeper := connectTx(t, url)
	idler := dialRaw(t, s)
	idler.login()

	cfg.QueryTimeout = 300 * time.Millisecond
	cfg.ClientIdleTimeout = 300 * time.Millisecond
	s.App.Reload(cfg)
	// A client counts as idle from when it first sees timeouts a reload
	// turned on: at the latest its next message, or already at the reload
	// if its session looked then. Its next message goes at once, so that
	// the 300ms cannot run out before it whichever way the race went.
	idler.simpleQuery("select 1")
	_, err := sleeper.Exec(ctx, "select pg_sleep(20)")
	wantError(t, err, "57014")
	idler.expectFatalThenEOF("57P05")
}

func TestReloadedMaxClientConnAppliesToTheNextClient(t *testing.T) {
	cfg := sessionConfig(2)
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	first := testutil.Connect(t, url)
	cfg.MaxClientConn = 1
	s.App.Reload(cfg)
	_, err := pgx.Connect(ctx, url)
	wantCode(t, err, "53300")
	testutil.MustExec(t, first, "select 1")
	cfg.MaxClientConn = 2
	s.App.Reload(cfg)
	testutil.Connect(t, url)
}

func TestReloadKeepsListenAndAuthAndSaysTheyNeedARestart(t *testing.T) {
	cfg := sessionConfig(2)
	s, url := startValve(t, cfg)
	next := cfg
	next.Listen = "127.0.0.1:1"
	next.Auth = config.AuthPassthrough
	var restart []string
	for _, c := range s.App.Reload(next) {
		if c.Restart {
			restart = append(restart, c.Key)
		}
	}
	if strings.Join(restart, ",") != "listen,auth_type" {
		t.Fatalf("restart-only changes %v, want listen and auth_type", restart)
	}
	c := testutil.Connect(t, url) // same address, still trust
	testutil.MustExec(t, c, "select 1")
}

func TestPauseHoldsNewRequestsAndClosesServersUntilResume(t *testing.T) {
	cfg := txnConfig(2)
	cfg.QueryWaitTimeout = 0
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	inTx, later := connectTx(t, url), connectTx(t, url)
	tx, err := inTx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	s.App.Pause()
	if _, err := tx.Exec(ctx, "select 2"); err != nil {
		t.Fatalf("a transaction running at the pause must go on: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "every server to close", func() bool { return countBackends(t, admin) == 0 })
	done := backgroundQuery(ctx, later, "select 1")
	name := pgtest.TestDatabase + "/" + cluster.User
	waitPool(t, s, name, false, "the request to wait", func(st app.PoolStats, ok bool) bool {
		return ok && st.Paused && st.ClientsWaiting == 1 && st.Total() == 0
	})
	s.App.Resume()
	waitQuery(t, done, "the held request after RESUME")
	testutil.MustExec(t, inTx, "select 1")
	s.WaitIdle(t, 10*time.Second)
}
