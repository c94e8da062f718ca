//go:build linux

package relaylab_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/relaylab"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// startPooled starts the lab's minimal pooler over size servers.
func startPooled(tb testing.TB, size int) *relaylab.Relay {
	tb.Helper()
	return startRelay(tb, relaylab.Options{Design: relaylab.Pooled, PoolSize: size})
}

// simpleThrough connects with the simple protocol: the lab's pooler
// follows no prepared statement from server to server.
func simpleThrough(t *testing.T, r *relaylab.Relay) *pgx.Conn {
	t.Helper()
	url := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&default_query_exec_mode=simple_protocol",
		cluster.User, r.Addr().Port, cluster.Database)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect through the pooled relay: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestThePooledRelayServesMoreClientsThanItHasServers(t *testing.T) {
	r := startPooled(t, 2)
	const clients, rounds = 6, 20
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = simpleThrough(t, r)
	}
	var mu sync.Mutex
	pids := map[uint32]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, conn := range conns {
		wg.Go(func() {
			for j := range rounds {
				var sum int
				var pid uint32
				err := conn.QueryRow(context.Background(), "SELECT $1::int + $2::int, pg_backend_pid()", i, j).Scan(&sum, &pid)
				if err != nil || sum != i+j {
					errs <- fmt.Errorf("client %d round %d: %d + %d = %d, %v", i, j, i, j, sum, err)
					return
				}
				mu.Lock()
				pids[pid] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(pids) == 0 || len(pids) > 2 {
		t.Fatalf("%d clients were served by %d backends, want 1 or 2 (the pool's size)", clients, len(pids))
	}
}

func TestThePooledRelayPassesPostgreSQLsErrorsOn(t *testing.T) {
	conn := simpleThrough(t, startPooled(t, 1))
	_, err := conn.Exec(context.Background(), "SELECT 1/0")
	if err == nil || err.Error() != "ERROR: division by zero (SQLSTATE 22012)" {
		t.Fatalf("SELECT 1/0 returned %v, want PostgreSQL's division by zero", err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("the next query returned %d, %v", n, err)
	}
}

func TestClosingThePooledRelayEndsItsGoroutinesAndServers(t *testing.T) {
	admin := connectTo(t, cluster.Port)
	before := goleak.IgnoreCurrent()
	r := startPooled(t, 2)
	pids := map[uint32]bool{}
	for range 3 {
		var pid uint32
		if err := simpleThrough(t, r).QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids[pid] = true
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	goleak.VerifyNone(t, before)
	for pid := range pids {
		waitBackendGone(t, admin, pid)
	}
}

func TestThePooledRelayKeepsAClientsServerUntilItsTransactionEnds(t *testing.T) {
	r := startPooled(t, 2)
	ctx := context.Background()
	inTx, other := simpleThrough(t, r), simpleThrough(t, r)
	pid := func(conn *pgx.Conn) uint32 {
		t.Helper()
		var p uint32
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := inTx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	first := pid(inTx)
	for range 5 {
		if p := pid(other); p == first {
			t.Fatalf("another client ran on backend %d while a transaction held it", p)
		}
	}
	if p := pid(inTx); p != first {
		t.Fatalf("the transaction moved from backend %d to %d", first, p)
	}
	if _, err := inTx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPooledUnderLoad is internal/app's BenchmarkTransactionsUnderLoad
// through the least goroutine pooler: the floor for pgvalve's CPU per
// transaction, in the same units. Run with
//
//	go test -run '^$' -bench PooledUnderLoad -benchtime 60000x ./internal/relaylab
func BenchmarkPooledUnderLoad(b *testing.B) {
	r := startPooled(b, 20)
	txn, err := (&pgproto3.Query{String: testutil.LoadQuery}).Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	conns := make([]net.Conn, 50)
	for i := range conns {
		c, err := testutil.RawLogin(r.Addr().String(), cluster.User, cluster.Database)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	testutil.BenchUnderLoad(b, conns, txn)
}
