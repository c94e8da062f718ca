package app_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/faultnet"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// A fleet: instances 1..n of pgvalve in transaction pooling, each with its
// share of the server budget as max_db_connections, behind a round-robin
// TCP balancer (lb, and url through it).
type fleet struct {
	lb     *faultnet.Relay
	url    string
	valves []*valvetest.Server
}

// startFleet starts the fleet. With peers, each instance is told of all n
// (itself too, one shared list) by a reload once all listen, as an
// operator adding [peers] to running instances would.
func startFleet(t *testing.T, n, budget int, peers bool) fleet {
	t.Helper()
	var f fleet
	cfgs := make([]config.Config, n)
	var addrs []string
	for i := range n {
		cfg := txnConfig(budget) // the pool could take the whole budget: the instance's share caps it
		cfg.Listen = "127.0.0.1:0"
		cfg.PeerID = i + 1
		cfg.MaxDBConnections = budget / n
		cfgs[i] = cfg
		f.valves = append(f.valves, valvetest.Start(t, cfg))
		addrs = append(addrs, f.valves[i].Addr.String())
	}
	if peers {
		all := map[int]config.Peer{}
		for i, v := range f.valves {
			all[i+1] = config.Peer{ID: i + 1, Host: "127.0.0.1", Port: v.Port()}
		}
		for i, v := range f.valves {
			cfgs[i].Peers = all
			if changes := v.App.Reload(cfgs[i]); len(changes) != n {
				t.Fatalf("instance %d: reload with [peers] changed %v; want the %d peers", i+1, changes, n)
			}
		}
	}
	lb, err := faultnet.NewRoundRobin(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	f.lb = lb
	u := url.URL{Scheme: "postgres", User: url.UserPassword(cluster.User, cluster.Password), Host: lb.Addr(),
		Path: "/" + pgtest.TestDatabase, RawQuery: "sslmode=disable"}
	f.url = u.String()
	return f
}

// cancelThroughTheBalancer runs sql on a new client of the fleet, waits
// until it runs on PostgreSQL, sends the client's CancelRequest (pgconn
// dials the balancer, which hands it to the next instance) and returns
// how the query ended. The query's key names the instance it runs on.
func cancelThroughTheBalancer(t *testing.T, f fleet, sql string) error {
	t.Helper()
	ctx := testutil.Context(t)
	admin := direct(t)
	victim := connectTx(t, f.url)
	if owner := victim.PgConn().PID() & config.MaxPeerID; owner < 1 || int(owner) > len(f.valves) {
		t.Fatalf("the client's key names instance %d; want one of the fleet's", owner)
	}
	done := backgroundQuery(ctx, victim, sql)
	testutil.Eventually(t, "the query to run", func() bool { return activeQueries(ctx, admin, sql) == 1 })
	if err := victim.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		return r.err
	case <-time.After(testutil.WaitTimeout):
		t.Fatalf("%s: still running after its cancel and %s more", sql, testutil.WaitTimeout)
		return nil
	}
}

// startPgbench runs pgbench through 127.0.0.1:port in the background; wait
// waits for it and returns what runPgbench returns.
func startPgbench(t *testing.T, port int, args ...string) (wait func() (processed, failed int)) {
	t.Helper()
	base := []string{"-n", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", cluster.User}
	cmd := exec.Command(cluster.PgBench(), append(append(base, args...), pgtest.TestDatabase)...)
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waited := false // read and set on the test's goroutine only
	t.Cleanup(func() {
		if !waited { // the test failed before waiting: end the process it started
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return func() (int, int) {
		t.Helper()
		waited = true
		if err := <-exited; err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out.String())
		}
		processed := atoiMatch(t, out.Bytes(), `number of transactions actually processed: (\d+)`)
		failed := atoiMatch(t, out.Bytes(), `number of failed transactions: (\d+)`)
		t.Logf("pgbench %v through the balancer: %d processed, %d failed", args, processed, failed)
		return processed, failed
	}
}

// Three instances behind a round-robin balancer, loaded by pgbench while
// clients sleep and are cancelled: together they never hold more servers
// than the budget, every cancel ends its own query whichever instance it
// lands on, and no other client's query is cancelled.
func TestAFleetStaysInItsBudgetAndEveryCancelReachesItsOwnQuery(t *testing.T) {
	initPgbench(t)
	waitNoBackends(t, direct(t))
	const instances, budget = 3, 12
	f := startFleet(t, instances, budget, true)
	ctx := testutil.Context(t)
	peak := watchBackends(t)

	var bystanders []<-chan queryResult
	for i := range instances {
		sql := fmt.Sprintf("select pg_sleep(2) /* bystander %d */", i)
		bystanders = append(bystanders, backgroundQuery(ctx, connectTx(t, f.url), sql))
	}
	bench := startPgbench(t, f.lb.Port(), "-c", "6", "-j", "2", "-T", "5")
	for i := range 2 * instances {
		err := cancelThroughTheBalancer(t, f, fmt.Sprintf("select pg_sleep(30) /* victim %d */", i))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("victim %d: %v; want its query cancelled (57014)", i, err)
		}
	}
	for i, done := range bystanders {
		if r := <-done; r.err != nil {
			t.Fatalf("bystander %d, never cancelled, failed: %v", i, r.err)
		}
	}
	processed, failed := bench()
	if processed == 0 || failed != 0 {
		t.Fatalf("pgbench: %d processed, %d failed; want some and none failed", processed, failed)
	}
	most := peak()
	if most > budget {
		t.Fatalf("PostgreSQL saw %d server connections of the fleet at once; the budget is %d", most, budget)
	}
	if most <= budget/instances {
		t.Fatalf("at most %d server connections at once: the load never needed more than one instance's share", most)
	}
	for i, v := range f.valves {
		if st, _ := v.PoolStats(poolName()); st.Acquires == 0 {
			t.Fatalf("instance %d served nothing: the balancer did not spread the clients", i+1)
		}
	}
	t.Logf("at most %d of the budget's %d server connections at once", most, budget)
}

// The same fleet without [peers]: a client's next connection, its cancel,
// goes to the next instance, which holds no such key and cannot pass it
// on, so the query runs to its end. The test above fails without the
// forwarding it checks.
func TestWithoutPeersACancelLandingOnAnotherInstanceIsLost(t *testing.T) {
	f := startFleet(t, 3, 12, false)
	for i := range 3 {
		// Nothing else connects through the balancer: the cancel is always
		// the connection after its client's, so another instance's.
		if err := cancelThroughTheBalancer(t, f, fmt.Sprintf("select pg_sleep(1) /* lost cancel %d */", i)); err != nil {
			t.Fatalf("query %d: %v; want it to run to its end, its cancel lost", i, err)
		}
	}
}
