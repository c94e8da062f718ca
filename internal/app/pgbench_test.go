package app_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var pgbenchInit sync.Once

// initPgbench creates pgbench's tables once, directly on PostgreSQL.
func initPgbench(t *testing.T) {
	t.Helper()
	var err error
	var out []byte
	pgbenchInit.Do(func() {
		cmd := exec.Command(cluster.PgBench(), "-i", "-s", "1", "-q", "-h", cluster.Host, "-p", strconv.Itoa(cluster.Port),
			"-U", cluster.User, pgtest.TestDatabase)
		cmd.Env = []string{"PGPASSWORD=" + cluster.Password}
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
}

// runPgbench runs pgbench through pgvalve and returns transactions processed
// and failed, failing the test if pgbench itself fails.
func runPgbench(t *testing.T, port int, args ...string) (processed, failed int) {
	t.Helper()
	return pgbenchAs(t, cluster, port, pgtest.TestDatabase, append([]string{"-n"}, args...)...)
}

// pgbenchAs runs pgbench as c's test user against database db on
// 127.0.0.1:port; with -i it returns zeros, else what runPgbench returns.
func pgbenchAs(t *testing.T, c *pgtest.Cluster, port int, db string, args ...string) (processed, failed int) {
	t.Helper()
	base := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", c.User}
	cmd := exec.Command(c.PgBench(), append(append(base, args...), db)...)
	cmd.Env = []string{"PGPASSWORD=" + c.Password}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	if slices.Contains(args, "-i") {
		return 0, 0
	}
	processed = atoiMatch(t, out, `number of transactions actually processed: (\d+)`)
	failed = atoiMatch(t, out, `number of failed transactions: (\d+)`)
	t.Logf("pgbench %v: %d processed, %d failed", args, processed, failed)
	return processed, failed
}

func atoiMatch(t *testing.T, out []byte, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		t.Fatalf("pgbench output lacks %q:\n%s", pattern, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// watchBackends samples pg_stat_activity until the returned func is
// called, which returns the most server backends the test user had at once.
// A test that fails first stops it too, before its connection closes.
func watchBackends(t *testing.T) (peakSoFar func() int) {
	t.Helper()
	admin := direct(t)
	peak := 0
	halt := sampleEvery10ms(t, func() {
		if n, err := backendsOf(context.Background(), admin, cluster.User); err == nil {
			peak = max(peak, n)
		}
	})
	return func() int { halt(); return peak }
}

// sampleEvery10ms calls sample every 10ms, in a goroutine of its own,
// until the returned func is called; it returns once the last call has.
// It is called when the test ends too, before the connections the test
// opened earlier close.
func sampleEvery10ms(t *testing.T, sample func()) (halt func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	halt = func() { once.Do(func() { close(stop) }); <-done }
	t.Cleanup(halt)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			sample()
		}
	}()
	return halt
}

func TestPgbenchWithANewConnectionPerTransactionNeverExceedsThePool(t *testing.T) {
	initPgbench(t)
	const poolSize = 5
	for _, protocol := range []string{"simple", "extended"} {
		t.Run(protocol, func(t *testing.T) {
			admin := direct(t)
			waitNoBackends(t, admin)
			s, _ := startValve(t, sessionConfig(poolSize))
			peak := watchBackends(t)
			processed, failed := runPgbench(t, s.Port(), "-C", "-c", "20", "-j", "2", "-T", "5", "-M", protocol)
			maxBackends := peak()
			if failed != 0 || processed == 0 {
				t.Fatalf("pgbench: %d processed, %d failed; want some and none failed", processed, failed)
			}
			if p := maxBackends; p > poolSize || p == 0 {
				t.Fatalf("pg_stat_activity showed up to %d backends for the pool of %d", p, poolSize)
			}
			s.WaitIdle(t, 10*time.Second)
			st, _ := s.PoolStats(poolName())
			if st.Total() > poolSize || st.Acquires < int64(processed) {
				t.Fatalf("stats %+v after %d transactions", st, processed)
			}
		})
	}
}

// pgbenchSeconds is how long the big pgbench runs last: 5 s in the suite,
// PGVALVE_PGBENCH_T=20 for the acceptance run.
func pgbenchSeconds() string {
	if v := os.Getenv("PGVALVE_PGBENCH_T"); v != "" {
		return v
	}
	return "5"
}

func TestPgbenchWithAThousandClientsInTransactionModeNeverExceedsThePool(t *testing.T) {
	initPgbench(t)
	const poolSize = 20
	for _, protocol := range []string{"simple", "extended"} {
		t.Run(protocol, func(t *testing.T) {
			admin := direct(t)
			waitNoBackends(t, admin)
			cfg := txnConfig(poolSize)
			cfg.MaxClientConn = 1100
			s, _ := startValve(t, cfg)
			peak := watchBackends(t)
			processed, failed := runPgbench(t, s.Port(), "-c", "1000", "-j", "2", "-T", pgbenchSeconds(), "-M", protocol)
			maxBackends := peak()
			if failed != 0 || processed == 0 {
				t.Fatalf("pgbench: %d processed, %d failed; want some and none failed", processed, failed)
			}
			if p := maxBackends; p > poolSize || p == 0 {
				t.Fatalf("pg_stat_activity showed up to %d backends for the pool of %d", p, poolSize)
			}
			s.WaitIdle(t, 10*time.Second)
		})
	}
}
