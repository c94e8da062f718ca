package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// replicaPool is the pool size of the replica tests: enough for pgbench's
// clients, so that the choice of host, not the queue, decides.
const replicaPool = 6

// Read-only load through pgvalve over two streaming replicas of one
// primary: pgbench's transactions spread by each replica's free capacity,
// and each replica's own pg_stat_activity agrees with pgvalve's counts.
func TestReadOnlyLoadOverTwoReplicas(t *testing.T) {
	primary := startPrimary(t)
	r1, r2 := startStandby(t, primary), startStandby(t, primary)

	t.Run("spreads evenly over equal replicas, as each replica's pg_stat_activity shows", func(t *testing.T) {
		s, _ := valveOver(t, replicaPool, "standby", nil, r1, r2)
		watch := watchReplicas(t, r1, r2)
		replicaBench(t, s, primary, "-S")
		peaks, maxSum := watch()
		chosen := chosenPerHost(t, s)
		t.Logf("transactions per replica: %v", chosen)
		for i, r := range []*pgtest.Cluster{r1, r2} {
			if share := shareOf(chosen, i); share < 0.35 {
				t.Errorf("replica %d (port %d) got %.0f%% of %v transactions; want about half", i+1, r.Port, 100*share, chosen)
			}
			if peaks[i] == 0 {
				t.Errorf("replica %d's pg_stat_activity never showed a server of pgvalve's", i+1)
			}
		}
		if maxSum > replicaPool {
			t.Errorf("the replicas had %d of pgvalve's servers at once; the pool's size is %d", maxSum, replicaPool)
		}
		// At rest, each replica holds exactly the servers pgvalve says it
		// holds there (once the backends of servers just closed are gone).
		s.WaitIdle(t, 10*time.Second)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var seen, counted [2]int
			st, _ := s.PoolStats("app/" + pgtest.TestUser)
			for i, r := range []*pgtest.Cluster{r1, r2} {
				seen[i], counted[i] = poolBackends(t, r), st.Hosts[i].Idle
			}
			if seen == counted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the replicas hold %v of pgvalve's servers; pgvalve counts %v idle there", seen, counted)
			}
		}
	})

	t.Run("gives a replica of weight 3 more of the load than one of weight 1", func(t *testing.T) {
		s, _ := valveOver(t, replicaPool, "standby", func(cfg *config.Config) {
			route := cfg.Databases["app"]
			route.Hosts[0].Weight, route.Hosts[1].Weight = 3, 1
		}, r1, r2)
		replicaBench(t, s, primary, "-S")
		chosen := chosenPerHost(t, s)
		t.Logf("transactions per replica: %v", chosen)
		// Six clients on six servers: the servers split 4:2 or 5:1 by
		// weight, which bounds the share below 3:1; equal weights give 1:1.
		if chosen[1] == 0 || 2*chosen[0] < 3*chosen[1] {
			t.Fatalf("weights 3 and 1 gave %v transactions; want the first at least 1.5 times the second, and both used", chosen)
		}
	})

	t.Run("gives a slow replica fewer new transactions", func(t *testing.T) {
		s, _ := valveOver(t, replicaPool, "standby", nil, r1, r2)
		script := filepath.Join(t.TempDir(), "work.sql")
		if err := os.WriteFile(script, []byte("select work(:slow);\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// work() sleeps 20ms on the replica whose port is :slow, so its
		// leases stay out longer and the least busy host is the other.
		replicaBench(t, s, primary, "-f", script, "-D", "slow="+strconv.Itoa(r2.Port))
		chosen := chosenPerHost(t, s)
		t.Logf("transactions per replica: %v", chosen)
		if share := shareOf(chosen, 1); chosen[1] == 0 || share > 0.2 {
			t.Fatalf("the slow replica got %.1f%% of %v transactions; want some, and at most 20%%", 100*share, chosen)
		}
	})

	t.Run("any: the primary, a replica and a plain cluster all serve", func(t *testing.T) {
		plain := secondHost(t, false) // trusts the test user, so the primary's password does
		s, _ := valveOver(t, replicaPool, "any", nil, primary, r1, plain)
		script := filepath.Join(t.TempDir(), "one.sql")
		if err := os.WriteFile(script, []byte("select 1;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		replicaBench(t, s, primary, "-f", script)
		chosen := chosenPerHost(t, s)
		t.Logf("transactions per host: %v", chosen)
		for i := range chosen {
			if share := shareOf(chosen, i); share < 0.2 {
				t.Errorf("host %d got %.0f%% of %v transactions; want about a third", i+1, 100*share, chosen)
			}
		}
	})

	t.Run("moves the load off a stopped replica with errors only in flight, and back once it starts", func(t *testing.T) {
		s, url := valveOver(t, replicaPool, "standby", nil, r1, r2)
		load := startReadLoad(t, url, 4) // its logins make the pool
		testutil.Eventually(t, "both replicas checked and up", func() bool { return hostUp(s, 0) && hostUp(s, 1) })
		load.waitEach(t, 20)
		if err := r2.StopServer("fast"); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the stopped replica to leave the choice", func() bool { return !hostUp(s, 1) })
		load.waitEach(t, 20)
		// At most the one transaction each client had in flight on the
		// replica when it stopped fails; every client goes on.
		failed := load.errors()
		t.Logf("%d transactions failed when the replica stopped: %v", len(failed), failed)
		if len(failed) > load.clients {
			t.Errorf("%d transactions failed with %d clients: more than those in flight: %v", len(failed), load.clients, failed)
		}
		for _, err := range failed {
			if code, _ := pgCode(err); code != "08006" {
				t.Errorf("a transaction in flight failed with %v; want 08006", err)
			}
		}
		before := chosenPerHost(t, s)[1]
		if err := r2.StartServer(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the replica to come back and take transactions", func() bool {
			return hostUp(s, 1) && chosenPerHost(t, s)[1] > before
		})
		load.stop(t)
		if n := len(load.errors()); n != len(failed) {
			t.Errorf("%d more transactions failed after the replica left the choice", n-len(failed))
		}
	})
}

// startPrimary is a primary with pgbench's tables and work(slow), which
// sleeps 20ms on the server listening on port slow and returns at once
// elsewhere.
func startPrimary(t *testing.T) *pgtest.Cluster {
	t.Helper()
	primary, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	pgbenchAs(t, primary, primary.Port, primary.Database, "-i", "-s", "1", "-q")
	c := testutil.Connect(t, primary.URL(primary.User, primary.Password, primary.Database))
	testutil.MustExec(t, c, `create function work(slow int) returns int language sql as
		$$ select 1 from pg_sleep(case when inet_server_port() = slow then 0.02 else 0 end) $$`)
	return primary
}

func startStandby(t *testing.T, primary *pgtest.Cluster) *pgtest.Cluster {
	t.Helper()
	s, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// replicaBench runs pgbench with 6 clients for 3 seconds through s's route
// "app", and fails the test if any transaction fails.
func replicaBench(t *testing.T, s *valvetest.Server, primary *pgtest.Cluster, args ...string) {
	t.Helper()
	args = append([]string{"-n", "-c", strconv.Itoa(replicaPool), "-j", "2", "-T", "3", "-M", "extended"}, args...)
	processed, failed := pgbenchAs(t, primary, s.Port(), "app", args...)
	if processed == 0 || failed != 0 {
		t.Fatalf("pgbench %v: %d processed, %d failed; want some and none failed", args, processed, failed)
	}
}

// chosenPerHost is how many leases s's route "app" granted on each host.
func chosenPerHost(t *testing.T, s *valvetest.Server) []int64 {
	t.Helper()
	st, ok := s.PoolStats("app/" + pgtest.TestUser)
	if !ok {
		t.Fatal("no pool for the route app")
	}
	out := make([]int64, len(st.Hosts))
	for i, h := range st.Hosts {
		out[i] = h.Chosen
	}
	return out
}

// shareOf is host i's fraction of the leases.
func shareOf(chosen []int64, i int) float64 {
	var sum int64
	for _, n := range chosen {
		sum += n
	}
	if sum == 0 {
		return 0
	}
	return float64(chosen[i]) / float64(sum)
}

// poolBackends counts the sessions pgvalve's pool holds on r, as r's own
// pg_stat_activity shows them: the route user's client backends, less
// health checks.
func poolBackends(t *testing.T, r *pgtest.Cluster) int {
	t.Helper()
	c := testutil.Connect(t, r.SuperuserURL(r.Database))
	n, err := poolBackendsOn(testutil.Context(t), c, r.User)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func poolBackendsOn(ctx context.Context, c *pgx.Conn, user string) (int, error) {
	var n int
	err := c.QueryRow(ctx, `select count(*) from pg_stat_activity where usename = $1
		and backend_type = 'client backend' and application_name <> $2`, user, app.HealthCheckAppName).Scan(&n)
	return n, err
}

// watchReplicas samples each replica's pg_stat_activity every 10ms until
// the returned func is called, which returns the most of pgvalve's servers
// each had, and the most all had in two rounds in a row. A round asks the
// replicas one after the other, so a server moved from one to the other
// between the two questions (closed, then dialled: the pool never holds
// both) can be counted on both, and a closed server's backend takes a
// moment to leave pg_stat_activity; a server over the pool's size would
// show in the next round too.
func watchReplicas(t *testing.T, replicas ...*pgtest.Cluster) func() (peaks []int, maxSum int) {
	t.Helper()
	conns := make([]*pgx.Conn, len(replicas))
	for i, r := range replicas {
		conns[i] = testutil.Connect(t, r.SuperuserURL(r.Database))
	}
	peaks := make([]int, len(replicas))
	maxSum, last := 0, 0
	halt := sampleEvery10ms(t, func() {
		sum := 0
		for i, c := range conns {
			if n, err := poolBackendsOn(context.Background(), c, replicas[i].User); err == nil {
				peaks[i], sum = max(peaks[i], n), sum+n
			}
		}
		maxSum, last = max(maxSum, min(sum, last)), sum
	})
	return func() ([]int, int) { halt(); return peaks, maxSum }
}

// readLoad is clients each running short read transactions in a loop.
type readLoad struct {
	clients int
	done    []atomic.Int64 // transactions each client finished, failed or not
	mu      sync.Mutex
	errs    []error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startReadLoad(t *testing.T, url string, clients int) *readLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(testutil.Context(t))
	l := &readLoad{clients: clients, done: make([]atomic.Int64, clients), cancel: cancel}
	t.Cleanup(func() { l.cancel(); l.wg.Wait() })
	for i := range clients {
		c := testutil.Connect(t, url)
		l.wg.Go(func() {
			for ctx.Err() == nil {
				var n int
				err := c.QueryRow(ctx, "select count(*) from pgbench_branches").Scan(&n)
				if err != nil && ctx.Err() == nil {
					l.mu.Lock()
					l.errs = append(l.errs, err)
					l.mu.Unlock()
				}
				l.done[i].Add(1)
			}
		})
	}
	return l
}

// waitEach waits until every client has finished n more transactions.
func (l *readLoad) waitEach(t *testing.T, n int64) {
	t.Helper()
	from := make([]int64, l.clients)
	for i := range from {
		from[i] = l.done[i].Load()
	}
	testutil.Eventually(t, "every client to finish more transactions", func() bool {
		for i := range from {
			if l.done[i].Load() < from[i]+n {
				return false
			}
		}
		return true
	})
}

func (l *readLoad) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *readLoad) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
}
