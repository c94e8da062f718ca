package app_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestATerminatedServerFailsItsClientAndIsNotReused(t *testing.T) {
	for _, midQuery := range []bool{false, true} {
		name := "while the client is idle"
		if midQuery {
			name = "while the client runs a query"
		}
		t.Run(name, func(t *testing.T) {
			s, url := startValve(t, sessionConfig(2))
			ctx := testutil.Context(t)
			admin := direct(t)
			victim := testutil.Connect(t, url)
			bystander := testutil.Connect(t, url)
			var pid, otherPID int
			if err := victim.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			if err := bystander.QueryRow(ctx, "select pg_backend_pid()").Scan(&otherPID); err != nil {
				t.Fatal(err)
			}
			var running <-chan queryResult
			if midQuery {
				running = backgroundQuery(ctx, victim, "select pg_sleep(30)")
				testutil.Eventually(t, "the query to run", func() bool {
					return activeQueries(ctx, admin, "select pg_sleep(30)") == 1
				})
			}
			var ok bool
			if err := admin.QueryRow(ctx, "select pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
			if midQuery {
				r := <-running
				if r.err == nil {
					t.Fatal("the query on a terminated server succeeded")
				}
				wantCode(t, r.err, "57P01")
			} else {
				testutil.Eventually(t, "the backend to exit", func() bool {
					var n int
					_ = admin.QueryRow(ctx, "select count(*) from pg_stat_activity where pid = $1", pid).Scan(&n)
					return n == 0
				})
				if _, err := victim.Exec(ctx, "select 1"); err == nil {
					t.Fatal("a query on a terminated server succeeded")
				}
			}
			// The bystander is untouched; after it leaves only its server
			// remains, idle: the dead one was closed, not pooled.
			var again int
			if err := bystander.QueryRow(ctx, "select pg_backend_pid()").Scan(&again); err != nil || again != otherPID {
				t.Fatalf("bystander: pid %d (was %d), %v", again, otherPID, err)
			}
			bystander.Close(ctx)
			s.WaitIdle(t, 10*time.Second)
			name := poolName()
			if st, _ := s.PoolStats(name); st.ServersIdle != 1 || st.Total() != 1 {
				t.Fatalf("pool holds %+v; want just the bystander's server, idle", st)
			}
			fresh := testutil.Connect(t, url)
			var newPID int
			if err := fresh.QueryRow(ctx, "select pg_backend_pid()").Scan(&newPID); err != nil {
				t.Fatal(err)
			}
			if newPID == pid {
				t.Fatalf("a new client got the terminated server %d", pid)
			}
			fresh.Close(ctx)
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

func TestFiftyClientsShareAPoolOfFiveWithoutMixingResults(t *testing.T) {
	const clients, poolSize, queries = 50, 5, 5
	ctx := testutil.Context(t)
	admin := direct(t)
	waitNoBackends(t, admin)
	cfg := sessionConfig(poolSize)
	cfg.QueryWaitTimeout = 20 * time.Second
	s, url := startValve(t, cfg)
	peak := watchBackends(t)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for id := range clients {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := oneClient(cctx, url, id, queries); err != nil {
				errs <- fmt.Errorf("client %d: %w", id, err)
			}
		})
	}
	wg.Wait()
	peakBackends := peak()
	close(errs)
	var hung []error
	for err := range errs {
		if errors.Is(err, context.DeadlineExceeded) {
			hung = append(hung, err)
		} else {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	if len(hung) > 0 {
		s.WaitIdle(t, 10*time.Second)
		t.Fatalf("%d clients never got an answer: %v", len(hung), hung)
	}
	if p := peakBackends; p > poolSize || p == 0 {
		t.Fatalf("pg_stat_activity showed up to %d backends for a pool of %d", p, poolSize)
	}
	s.WaitIdle(t, 10*time.Second)
	st, _ := s.PoolStats(poolName())
	if st.Total() > poolSize || st.Acquires < clients || st.Timeouts != 0 {
		t.Fatalf("stats after %d clients: %+v", clients, st)
	}
}

// backend.Dial logs in with pgconn and then hijacks the socket. pgconn may
// have started its background reader during the login (a write that took
// over 15ms, which is common under load); unless the reader is stopped and
// drained first (PgConn.SyncConn, which pgconn documents as required
// before Hijack), it stays blocked reading the hijacked socket and
// swallows the server's next reply: the first client's first answer.
func TestAFreshServerNeverSwallowsTheFirstReply(t *testing.T) {
	// One P makes the slow-write timer fire often during the login storm.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const rounds, clients = 10, 30
	for round := range rounds {
		s, url := startValve(t, sessionConfig(5))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var hung, failed []error
		for id := range clients {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err := oneClient(ctx, url, id, 1)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					hung = append(hung, err)
				case err != nil:
					failed = append(failed, err)
				}
			})
		}
		wg.Wait()
		if len(failed) > 0 {
			t.Fatalf("round %d: %v", round, failed)
		}
		s.WaitIdle(t, 10*time.Second)
		s.Stop()
		if len(hung) > 0 {
			t.Fatalf("in round %d, %d of %d clients never got an answer to their first query: "+
				"a freshly dialled server swallowed it", round, len(hung), clients)
		}
	}
}

// oneClient connects, checks that every answer is its own and leaves.
func oneClient(ctx context.Context, url string, id, queries int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// A session setting proves the session is this client's alone.
	if _, err := conn.Exec(ctx, "select set_config('application_name', $1, false)", fmt.Sprint("client-", id)); err != nil {
		return err
	}
	for q := range queries {
		want := id*1000 + q
		var got int
		var app string
		if err := conn.QueryRow(ctx, "select $1::int, current_setting('application_name')", want).Scan(&got, &app); err != nil {
			return err
		}
		if got != want || app != fmt.Sprint("client-", id) {
			return fmt.Errorf("query %d returned %d/%q, want %d/client-%d", q, got, app, want, id)
		}
	}
	return conn.Close(ctx)
}

// A server can die while it sits idle in the pool (a restart, an admin's
// pg_terminate_backend, idle_session_timeout). The next client must get a
// live server, not the dead one's farewell.
func TestAPooledServerThatDiedWhileIdleIsNotHandedOut(t *testing.T) {
	s, url := startValve(t, sessionConfig(1))
	ctx := testutil.Context(t)
	admin := direct(t)
	first := testutil.Connect(t, url)
	var pid int
	if err := first.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
	if _, err := admin.Exec(ctx, "select pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the backend to exit", func() bool {
		var n int
		_ = admin.QueryRow(ctx, "select count(*) from pg_stat_activity where pid = $1", pid).Scan(&n)
		return n == 0
	})

	next := testutil.Connect(t, url)
	var newPID int
	err := next.QueryRow(ctx, "select pg_backend_pid()").Scan(&newPID)
	next.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
	if err != nil {
		t.Fatalf("the pool handed a server that died while idle to the next client, "+
			"whose first query failed: %v", err)
	}
	if newPID == pid {
		t.Fatalf("got the terminated server %d", pid)
	}
}
