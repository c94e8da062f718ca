package app_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

func TestPgxWorksThroughSessionModeInEveryQueryExecMode(t *testing.T) {
	_, url := startValve(t, sessionConfig(4))
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testutil.Context(t)
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for i := range 3 {
				var sum int
				var text string
				if err := conn.QueryRow(ctx, "select $1::int + $2::int, $3::text", i, 40, "héllo").Scan(&sum, &text); err != nil {
					t.Fatal(err)
				}
				if sum != i+40 || text != "héllo" {
					t.Fatalf("got %d %q", sum, text)
				}
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "create temp table t(x int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "insert into t select generate_series(1, 1000)"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow(ctx, "select count(*) from t").Scan(&n); err != nil || n != 1000 {
				t.Fatalf("count = %d, %v", n, err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			_, err = conn.Exec(ctx, "select 1/0")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
				t.Fatalf("division by zero: %v", err)
			}
			if err := conn.Ping(ctx); err != nil {
				t.Fatalf("connection must survive a query error: %v", err)
			}
		})
	}
}

func TestPsqlSeesItsOwnStartupSettingsThroughPgvalve(t *testing.T) {
	s, _ := startValve(t, sessionConfig(2))
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s application_name=psqltest options='-c search_path=pg_catalog,public -c statement_timeout=4321'",
		s.Port(), cluster.User, pgtest.TestDatabase)
	cmd := exec.Command(cluster.Psql(), "-X", "-A", "-t", "-d", conninfo,
		"-c", "show application_name", "-c", "show search_path", "-c", "show statement_timeout")
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password, "PGSSLMODE=prefer"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	want := "psqltest\npg_catalog,public\n4321ms\n"
	if string(out) != want {
		t.Fatalf("psql printed %q, want %q", out, want)
	}
	s.WaitIdle(t, 10*time.Second)
}

func TestAServerIsResetBeforeTheNextClientGetsIt(t *testing.T) {
	s, url := startValve(t, sessionConfig(1))
	ctx := testutil.Context(t)
	first := testutil.Connect(t, url)
	var pid1 int
	if err := first.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, "set work_mem = '7MB'; create temp table leftover(x int)"); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	s.WaitIdle(t, 10*time.Second)

	second := testutil.Connect(t, url)
	var pid2 int
	var workMem string
	if err := second.QueryRow(ctx, "select pg_backend_pid(), current_setting('work_mem')").Scan(&pid2, &workMem); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Fatalf("pool of one: the server must be reused (pids %d, %d)", pid1, pid2)
	}
	if workMem == "7MB" {
		t.Fatal("the next client saw the previous client's SET")
	}
	var n int
	if err := second.QueryRow(ctx, "select count(*) from pg_class where relname = 'leftover'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the previous client's temp table survived: %d %v", n, err)
	}
}

func TestWaitingClientsGiveUpWith53300AfterTheWaitTimeout(t *testing.T) {
	cfg := sessionConfig(1)
	cfg.QueryWaitTimeout = 500 * time.Millisecond
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	holder := testutil.Connect(t, url)
	if _, err := holder.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	waiter := testutil.Connect(t, url)
	_, err := waiter.Exec(ctx, "select 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		t.Fatalf("want SQLSTATE 53300, got %v", err)
	}
	name := poolName()
	if !strings.Contains(pgErr.Message, name) || !strings.Contains(pgErr.Message, "500ms") {
		t.Fatalf("message %q must name the pool %q and the timeout", pgErr.Message, name)
	}
	holder.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
	st, _ := s.PoolStats(name)
	if st.Timeouts != 1 {
		t.Fatalf("Timeouts = %d, want 1", st.Timeouts)
	}
	// The pool works again for a new client.
	again := testutil.Connect(t, url)
	if _, err := again.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
}

func TestAClientThatVanishesMidQueryReturnsItsLease(t *testing.T) {
	s, url := startValve(t, sessionConfig(2))
	ctx := testutil.Context(t)
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// Send a long query and drop the socket without reading the answer.
	conn.Frontend().Send(&pgproto3.Query{String: "select pg_sleep(60)"})
	if err := conn.Frontend().Flush(); err != nil {
		t.Fatal(err)
	}
	admin := direct(t)
	testutil.Eventually(t, "the query to start", func() bool {
		var n int
		_ = admin.QueryRow(ctx, "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'").Scan(&n)
		return n == 1
	})
	_ = conn.Conn().Close()
	s.WaitIdle(t, 10*time.Second)
	testutil.Eventually(t, "the abandoned query to be cancelled", func() bool {
		var n int
		_ = admin.QueryRow(ctx, "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'").Scan(&n)
		return n == 0
	})
}
