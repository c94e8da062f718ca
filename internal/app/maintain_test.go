package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// holdServers opens n clients that each hold a server in an open
// transaction, then ends them all.
func holdServers(t *testing.T, url string, n int) {
	t.Helper()
	ctx := testutil.Context(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*pgx.Conn
	for range n {
		c := connectTx(t, url)
		conns = append(conns, c)
	}
	var txs []pgx.Tx
	for _, c := range conns {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "select 1"); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tx.Commit(context.Background()); err != nil {
				mu.Lock()
				defer mu.Unlock()
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// min_pool_size servers open with the pool's first client and stay; idle
// servers beyond them close after server_idle_timeout, as
// pg_stat_activity shows.
func TestIdleServersCloseDownToMinPoolSize(t *testing.T) {
	cfg := txnConfig(5)
	cfg.MinPoolSize = 2
	cfg.ServerIdleTimeout = 300 * time.Millisecond
	_, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	count := func() int {
		n, err := backendsOf(ctx, admin, cluster.User)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := connectTx(t, url)
	if _, err := first.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "min_pool_size servers to open", func() bool { return count() == 2 })
	holdServers(t, url, 5)
	if n := count(); n != 5 {
		t.Fatalf("%d servers after five concurrent transactions; want 5", n)
	}
	testutil.Eventually(t, "idle servers to close down to min_pool_size", func() bool { return count() == 2 })
	time.Sleep(600 * time.Millisecond) // two more idle timeouts: the minimum stays
	if n := count(); n != 2 {
		t.Fatalf("%d servers after further idle time; min_pool_size keeps 2", n)
	}
}

// A server past server_lifetime is replaced once its transaction ends, not
// during it: the backend pid stays the same inside a transaction and
// changes afterwards.
func TestServerLifetimeReplacesServersBetweenTransactions(t *testing.T) {
	cfg := txnConfig(1)
	cfg.ServerLifetime = 200 * time.Millisecond
	_, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := backendPID(t, tx)
	time.Sleep(300 * time.Millisecond) // past the lifetime, inside the transaction
	if p := backendPID(t, tx); p != before {
		t.Fatalf("the server changed inside a transaction: pid %d then %d", before, p)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if p := backendPID(t, c); p == before {
		t.Fatalf("the server outlived server_lifetime: still pid %d", p)
	}
}

// A client that waited reserve_pool_timeout gets one of reserve_pool_size
// extra servers; without waiting that long nobody does.
func TestReservePoolServesAClientThatWaitedTheReserveTimeout(t *testing.T) {
	cfg := txnConfig(1)
	cfg.ReservePoolSize = 1
	cfg.ReservePoolTimeout = 300 * time.Millisecond
	_, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	holder := connectTx(t, url)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	testutil.MustExec(t, holder, "select 1")
	waiter := connectTx(t, url)
	start := time.Now()
	testutil.MustExec(t, waiter, "select 1") // served while the only pool server is held
	waited := time.Since(start)
	if waited < cfg.ReservePoolTimeout {
		t.Fatalf("served after %s, before reserve_pool_timeout %s", waited, cfg.ReservePoolTimeout)
	}
	if n, err := backendsOf(ctx, admin, cluster.User); err != nil || n != 2 {
		t.Fatalf("%d servers (%v); want the pool's 1 plus 1 reserve", n, err)
	}
}
