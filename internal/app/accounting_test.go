package app_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// fault is one way a client can leave a server in an awkward state.
type fault struct {
	name string
	run  func(ctx context.Context, h *harness) error
}

// harness is what every fault needs: pgvalve's URL and a superuser
// connection straight to PostgreSQL.
type harness struct {
	url   string
	admin *pgx.Conn
	mu    sync.Mutex // pgx.Conn is not safe for concurrent use
}

func (h *harness) adminExec(ctx context.Context, sql string, args ...any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.admin.Exec(ctx, sql, args...)
	return err
}

func (h *harness) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(h.url)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	return pgx.ConnectConfig(ctx, cfg)
}

// faults are the scenarios of the accounting tests. Each returns only
// errors that mean the test itself broke; errors the scenario provokes are
// expected and swallowed.
var faults = []fault{
	{"a plain query", func(ctx context.Context, h *harness) error {
		c, err := h.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "select $1::int", 7).Scan(&n)
	}},
	{"an error mid-transaction", func(ctx context.Context, h *harness) error {
		c, err := h.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		_, _ = tx.Exec(ctx, "select 1/0")
		return tx.Rollback(ctx)
	}},
	{"a client killed mid-query", func(ctx context.Context, h *harness) error {
		c, err := pgconn.Connect(ctx, h.url)
		if err != nil {
			return err
		}
		c.Frontend().Send(&pgproto3.Query{String: "select pg_sleep(0.05)"})
		if err := c.Frontend().Flush(); err != nil {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		return c.Conn().Close()
	}},
	{"a client killed mid-transaction", func(ctx context.Context, h *harness) error {
		c, err := pgconn.Connect(ctx, h.url)
		if err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "begin; select 1").ReadAll(); err != nil {
			return err
		}
		return c.Conn().Close()
	}},
	{"its server terminated while leased", func(ctx context.Context, h *harness) error {
		c, err := h.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		var pid int
		if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
			return err
		}
		if err := h.adminExec(ctx, "select pg_terminate_backend($1)", pid); err != nil {
			return err
		}
		_, _ = tx.Exec(ctx, "select 1") // fails: the server is gone
		return nil
	}},
	{"an idle server terminated", func(ctx context.Context, h *harness) error {
		return h.adminExec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
			where usename = $1 and state = 'idle' and backend_type = 'client backend'
			order by random() limit 1`, cluster.User)
	}},
	{"a context cancelled while waiting in the queue", func(ctx context.Context, h *harness) error {
		c, err := h.connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		qctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(5))*time.Millisecond)
		defer cancel()
		_, _ = c.Exec(qctx, "select pg_sleep(0.01)")
		return nil
	}},
}

// runFaults runs n random faults from workers goroutines against s.
func runFaults(t *testing.T, s *valvetest.Server, n, workers int) map[string]int {
	t.Helper()
	// Generous: on a loaded 2-core machine 1,000 faults can take minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := &harness{url: s.URL(cluster.User, cluster.Password, poolDB()), admin: direct(t)}
	var next atomic.Int64
	var mu sync.Mutex
	ran := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				f := faults[rand.IntN(len(faults))]
				if err := f.run(ctx, h); err != nil && !expected(err) {
					errs <- fmt.Errorf("%s: %w", f.name, err)
					return
				}
				mu.Lock()
				ran[f.name]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ran
}

// expected are errors the faults provoke on purpose: a server terminated
// under a client (a closed connection, 57P01 or 08006), a pool wait that
// gave up (53300), a cancelled or timed-out query. A server error with any
// other code means pgvalve mixed something up.
func expected(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "08006", "53300", "57014", "25P02":
			return true
		}
		return false
	}
	return true
}

// checkIdle reports how pgvalve's accounting disagrees with rest: no server
// leased, waiting or in motion, and PostgreSQL showing exactly the idle
// servers the pool holds.
func checkIdle(ctx context.Context, s *valvetest.Server, admin *pgx.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, _ := s.PoolStats(poolName())
		backends, err := backendsOf(ctx, admin, cluster.User)
		var problem error
		switch {
		case err != nil:
			problem = err
		case st.ServersActive != 0 || st.ClientsWaiting != 0 || st.ServersConnecting != 0 || st.ServersClosing != 0:
			problem = fmt.Errorf("pool not at rest: %+v", st.Stats)
		case backends != st.ServersIdle:
			problem = fmt.Errorf("pg_stat_activity shows %d backends, the pool holds %d idle", backends, st.ServersIdle)
		}
		if problem == nil || time.Now().After(deadline) {
			return problem
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func faultCount() int {
	if n, err := strconv.Atoi(os.Getenv("PGVALVE_FAULTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

func TestAccountingReturnsToIdleAfterRandomFaults(t *testing.T) {
	ctx := testutil.Context(t)
	admin := direct(t)
	waitNoBackends(t, admin)
	cfg := txnConfig(4)
	cfg.QueryWaitTimeout = 2 * time.Second
	// Servers die and are dialled again all the time here; over the unix
	// socket (trust) a dial skips SCRAM's PBKDF2, which -race makes slow.
	cfg.Upstream += "&host=" + url.QueryEscape(cluster.SocketDir)
	s := valvetest.Start(t, cfg)
	start := time.Now()
	ran := runFaults(t, s, faultCount(), 16)
	t.Logf("faults run in %s: %v", time.Since(start).Round(time.Millisecond), ran)
	ctx = testutil.Context(t) // the faults may have taken a while
	if err := checkIdle(ctx, s, admin, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// pgvalve still answers at once.
	c := connectTx(t, s.URL(cluster.User, cluster.Password, poolDB()))
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
}

func TestAccountingCheckFailsWhenALeaseIsNotReleased(t *testing.T) {
	ctx := testutil.Context(t)
	admin := direct(t)
	waitNoBackends(t, admin)
	var skipped atomic.Int32
	knobs := &session.Knobs{SkipRelease: func() bool {
		// Skip exactly one release, on whatever path comes first.
		return skipped.CompareAndSwap(0, 1)
	}}
	s := valvetest.StartWithKnobs(t, txnConfig(4), knobs)
	runFaults(t, s, 20, 2)
	if skipped.Load() != 1 {
		t.Fatal("the knob never fired")
	}
	if err := checkIdle(ctx, s, admin, 2*time.Second); err == nil {
		t.Fatal("a lease that was never released went unnoticed")
	} else {
		t.Logf("detected as intended: %v", err)
	}
}
