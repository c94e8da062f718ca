package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// wantCode asserts err is a server error with the given SQLSTATE.
func wantCode(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Fatalf("got %v, want SQLSTATE %s", err, code)
	}
	return pgErr
}

func TestPassthroughAuthLetsInOnlyTheRightPassword(t *testing.T) {
	cfg := sessionConfig(2)
	cfg.Auth = config.AuthPassthrough
	cfg.Upstream = cluster.URL(cluster.User, "", pgtest.TestDatabase)
	if up, err := config.ParseUpstream(cfg.Upstream); err != nil || up.Password != "" {
		t.Fatalf("upstream without a password: %+v %v", up, err)
	}
	s, right := startValve(t, cfg)
	wrong := s.URL(cluster.User, cluster.Password+"x", pgtest.TestDatabase)
	empty := s.URL(cluster.User, "", pgtest.TestDatabase)

	attempt := func(t *testing.T, url string) (*pgx.Conn, error) {
		conn, err := pgx.Connect(testutil.Context(t), url)
		if err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
		}
		return conn, err
	}
	mustWork := func(t *testing.T, url string) *pgx.Conn {
		t.Helper()
		conn, err := attempt(t, url)
		if err != nil {
			t.Fatalf("the right password was refused: %v", err)
		}
		var user string
		if err := conn.QueryRow(testutil.Context(t), "select current_user").Scan(&user); err != nil || user != cluster.User {
			t.Fatalf("current_user = %q, %v", user, err)
		}
		return conn
	}

	t.Run("a wrong password before any right one", func(t *testing.T) {
		_, err := attempt(t, wrong)
		wantCode(t, err, "28P01")
	})
	t.Run("the right password", func(t *testing.T) {
		first := mustWork(t, right)
		second := mustWork(t, right) // served by the accepted password
		var a, b int
		_ = first.QueryRow(testutil.Context(t), "select pg_backend_pid()").Scan(&a)
		_ = second.QueryRow(testutil.Context(t), "select pg_backend_pid()").Scan(&b)
		if a == b || a == 0 {
			t.Fatalf("two sessions share server %d/%d", a, b)
		}
	})
	t.Run("a wrong password after the right one was accepted", func(t *testing.T) {
		_, err := attempt(t, wrong)
		wantCode(t, err, "28P01")
	})
	t.Run("an empty password", func(t *testing.T) {
		_, err := attempt(t, empty)
		wantCode(t, err, "28P01")
	})
	t.Run("the right password again", func(t *testing.T) {
		mustWork(t, right)
	})
	t.Run("psql with the right password", func(t *testing.T) {
		out, err := psqlThrough(t, s.Port(), cluster.Password, "select 'psql ok'")
		if err != nil || strings.TrimSpace(out) != "psql ok" {
			t.Fatalf("psql: %v\n%s", err, out)
		}
	})
	s.WaitIdle(t, 10*time.Second)
}

func TestMaxClientConnRefusesTheClientOverTheLimitWith53300(t *testing.T) {
	cfg := sessionConfig(2)
	cfg.MaxClientConn = 2
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	first := testutil.Connect(t, url)
	second := testutil.Connect(t, url)
	for _, c := range []*pgx.Conn{first, second} {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		_, err := pgx.Connect(ctx, url)
		pgErr := wantCode(t, err, "53300")
		if !strings.Contains(pgErr.Message, "max_client_conn") {
			t.Fatalf("message %q does not name max_client_conn", pgErr.Message)
		}
	}
	// Clients refused before their startup packet: an SSL request first.
	_, err := pgx.Connect(ctx, strings.Replace(url, "sslmode=disable", "sslmode=prefer", 1))
	wantCode(t, err, "53300")

	first.Close(ctx)
	// The slot frees when pgvalve has ended the session, a moment after
	// the client's Terminate.
	var third *pgx.Conn
	testutil.Eventually(t, "a new connection to be admitted", func() bool {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
				t.Fatalf("unexpected error: %v", err)
			}
			return false
		}
		third = c
		return true
	})
	defer third.Close(ctx)
	var n int
	if err := third.QueryRow(ctx, "select 3").Scan(&n); err != nil || n != 3 {
		t.Fatalf("the admitted client: %d %v", n, err)
	}
	if err := second.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	third.Close(ctx)
	second.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

func TestAClientThatNeverLogsInIsDroppedAndFreesItsSlot(t *testing.T) {
	cases := []struct {
		name string
		send func(t *testing.T, c *rawConn)
	}{
		{"silent", func(*testing.T, *rawConn) {}},
		{"half a startup packet", func(_ *testing.T, c *rawConn) { c.write([]byte{0, 0, 0, 40, 0, 3}) }},
		{"no answer to the password request", func(t *testing.T, c *rawConn) {
			c.startup(pgproto3.ProtocolVersion30, testUserParams())
			if m, ok := c.receive().(*pgproto3.AuthenticationCleartextPassword); !ok {
				t.Fatalf("got %T, want a password request", m)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sessionConfig(1)
			cfg.MaxClientConn = 1
			cfg.ClientLoginTimeout = 300 * time.Millisecond
			cfg.Auth = config.AuthPassthrough
			s, url := startValve(t, cfg)
			c := dialRaw(t, s)
			start := time.Now()
			tc.send(t, c)
			if _, err := io.ReadAll(c.nc); err != nil {
				t.Fatalf("want the connection closed: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("closed after %s; the login timeout is 300ms", d)
			}
			// The one slot is free again.
			testutil.Eventually(t, "a client to be admitted", func() bool {
				conn, err := pgx.Connect(testutil.Context(t), url)
				if err != nil {
					return false
				}
				defer conn.Close(testutil.Context(t))
				return conn.Ping(testutil.Context(t)) == nil
			})
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

func TestNamedRoutesReachTheirUpstreamAndUnknownDatabasesGet3D000(t *testing.T) {
	cfg := sessionConfig(2)
	cfg.Upstream = ""
	cfg.Databases = map[string]config.Database{
		"app": {Name: "app", Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)},
	}
	s := valvetest.Start(t, cfg)
	ctx := testutil.Context(t)

	t.Run("app reaches the test database", func(t *testing.T) {
		conn := testutil.Connect(t, s.URL(cluster.User, cluster.Password, "app"))
		var db, user string
		if err := conn.QueryRow(ctx, "select current_database(), current_user").Scan(&db, &user); err != nil {
			t.Fatal(err)
		}
		if db != pgtest.TestDatabase || user != cluster.User {
			t.Fatalf("app reached %s as %s", db, user)
		}
		if _, ok := s.PoolStats("app/" + cluster.User); !ok {
			t.Fatalf("no pool app/%s in %+v", cluster.User, s.App.Stats())
		}
	})
	t.Run("app logs in as the route's user whoever the client names", func(t *testing.T) {
		conn := testutil.Connect(t, s.URL("someone_else", "irrelevant", "app"))
		var user string
		if err := conn.QueryRow(ctx, "select current_user").Scan(&user); err != nil || user != cluster.User {
			t.Fatalf("current_user = %q, %v", user, err)
		}
	})
	for _, db := range []string{"nope", pgtest.TestDatabase, "App"} {
		t.Run(db+" gets 3D000", func(t *testing.T) {
			_, err := pgx.Connect(ctx, s.URL(cluster.User, cluster.Password, db))
			pgErr := wantCode(t, err, "3D000")
			if pgErr.Severity != "FATAL" || !strings.Contains(pgErr.Message, db) {
				t.Fatalf("got %s %q, want FATAL naming %q", pgErr.Severity, pgErr.Message, db)
			}
		})
	}
	if len(s.App.Stats()) != 2 {
		t.Fatalf("unknown databases made pools: %+v", s.App.Stats())
	}
	s.WaitIdle(t, 10*time.Second)
}

// psqlThrough runs one statement with psql through pgvalve as the test user
// and returns its unaligned, tuples-only output.
func psqlThrough(t *testing.T, port int, password, sql string) (string, error) {
	t.Helper()
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", port, cluster.User, pgtest.TestDatabase)
	cmd := exec.Command(cluster.Psql(), "-X", "-A", "-t", "-d", conninfo, "-c", sql)
	cmd.Env = []string{"PGPASSWORD=" + password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=20"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Passthrough remembers the last password the upstream accepted so that
// clients presenting it need no server login. A password the server no
// longer accepts must stop working, as it would against PostgreSQL itself.
func TestPassthroughRefusesAPasswordTheServerNoLongerAccepts(t *testing.T) {
	const role = "pgvalve_rotating"
	ctx := testutil.Context(t)
	admin := direct(t)
	if _, err := admin.Exec(ctx, "create role "+role+" login password 'old-secret'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = admin.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", role)
		if _, err := admin.Exec(ctx, "drop role "+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	cfg := sessionConfig(2)
	cfg.Auth = config.AuthPassthrough
	cfg.Upstream = cluster.URL(cluster.User, "", pgtest.TestDatabase)
	s := valvetest.Start(t, cfg)
	oldURL := s.URL(role, "old-secret", pgtest.TestDatabase)
	newURL := s.URL(role, "new-secret", pgtest.TestDatabase)

	first := testutil.Connect(t, oldURL)
	if err := first.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
	if _, err := admin.Exec(ctx, "alter role "+role+" password 'new-secret'"); err != nil {
		t.Fatal(err)
	}

	// pgvalve trusts a password the server accepted for a couple of
	// seconds (app.passwordFresh); past that it asks the server again.
	time.Sleep(2100 * time.Millisecond)
	conn, err := pgx.Connect(ctx, oldURL)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
		s.WaitIdle(t, 10*time.Second)
		if err == nil {
			t.Fatal("after ALTER ROLE ... PASSWORD, passthrough still lets the old password in")
		}
	}
	wantCode(t, err, "28P01")
	fresh := testutil.Connect(t, newURL)
	if err := fresh.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	fresh.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}
