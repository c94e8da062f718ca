package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

func txnConfig(poolSize int) config.Config {
	cfg := sessionConfig(poolSize)
	cfg.PoolMode = config.PoolTransaction
	return cfg
}

// connectTx connects for transaction pooling with pgx's exec mode, which
// prepares nothing by name (prepared_test.go covers every other mode).
func connectTx(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(testutil.Context(t), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func poolDB() string { return pgtest.TestDatabase }

func poolName() string { return fmt.Sprintf("%s/%s", poolDB(), cluster.User) }

func TestTransactionModeSharesOneServerAmongManyClients(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	var conns []*pgx.Conn
	for range 5 {
		conns = append(conns, connectTx(t, url))
	}
	pids := map[int]bool{}
	for round := range 3 {
		for i, c := range conns {
			var pid, echo int
			if err := c.QueryRow(ctx, "select pg_backend_pid(), $1::int", i*10+round).Scan(&pid, &echo); err != nil {
				t.Fatal(err)
			}
			if echo != i*10+round {
				t.Fatalf("client %d got %d", i, echo)
			}
			pids[pid] = true
		}
	}
	if len(pids) != 1 {
		t.Fatalf("five clients on a pool of one used %d servers", len(pids))
	}
	// The server goes back just after the answer is written: a client may
	// read it first (CI once looked in between).
	var st app.PoolStats
	testutil.EventuallyWithin(t, 10*time.Second, "the server to go back between transactions", func() bool {
		st, _ = s.PoolStats(poolName())
		return st.ServersActive == 0
	})
	if st.Clients != 5 || st.ServersIdle != 1 {
		t.Fatalf("between transactions no client holds a server: %+v", st)
	}
}

func TestAnOpenTransactionKeepsItsServerUntilCommit(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	a := connectTx(t, url)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid1, pid2 int
	if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	// Another client uses the other server meanwhile.
	b := connectTx(t, url)
	if _, err := b.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Fatalf("a transaction moved from server %d to %d", pid1, pid2)
	}
	if st, _ := s.PoolStats(poolName()); st.ServersActive != 1 {
		t.Fatalf("inside a transaction the client holds its server: %+v", st)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.WaitIdle(t, 5*time.Second)
}

func TestStatementModeRefusesTransactionBlocks(t *testing.T) {
	cfg := txnConfig(1)
	cfg.PoolMode = config.PoolStatement
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	var n int
	if err := c.QueryRow(ctx, "select 40 + $1::int", 2).Scan(&n); err != nil || n != 42 {
		t.Fatalf("a single statement works: %d %v", n, err)
	}
	if _, err := c.Exec(ctx, "begin; select 1; commit"); err != nil {
		t.Fatalf("a whole transaction in one query is one statement: %v", err)
	}
	_, err := c.Exec(ctx, "begin")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		t.Fatalf("BEGIN in statement mode: want 0A000, got %v", err)
	}
	s.WaitIdle(t, 5*time.Second)
	st, _ := s.PoolStats(poolName())
	if st.ServersIdle != 1 {
		t.Fatalf("the server is rolled back and kept: %+v", st)
	}
	// And it is clean: no server of the pool sits inside that transaction.
	var inTx int
	err = direct(t).QueryRow(ctx, `select count(*) from pg_stat_activity
		where usename = $1 and state like 'idle in transaction%'`, cluster.User).Scan(&inTx)
	if err != nil || inTx != 0 {
		t.Fatalf("%d servers left inside a transaction (%v)", inTx, err)
	}
}

// TestPoolOfOneTimesOutFiftyWaitersAndRecovers is the acceptance
// scenario: one client holds the only server in an open transaction; fifty
// others fail with 53300 after the wait timeout; after the commit a new
// client gets the server at once and the stats are idle.
func TestPoolOfOneTimesOutFiftyWaitersAndRecovers(t *testing.T) {
	cfg := txnConfig(1)
	cfg.QueryWaitTimeout = time.Second
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	holder := connectTx(t, url)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	waited := make([]time.Duration, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close(context.Background())
			start := time.Now()
			_, errs[i] = c.Exec(ctx, "select 1")
			waited[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
			t.Fatalf("client %d: want 53300, got %v", i, err)
		}
		if waited[i] < 900*time.Millisecond {
			t.Fatalf("client %d gave up after %s, before the 1s wait timeout", i, waited[i])
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c := connectTx(t, url)
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("after the commit a new client must get the server: %v", err)
	}
	s.WaitIdle(t, 5*time.Second)
	st, _ := s.PoolStats(poolName())
	if st.Timeouts != 50 || st.ServersActive != 0 || st.ClientsWaiting != 0 || st.Total() != 1 {
		t.Fatalf("stats after the scenario: %+v", st)
	}
}
