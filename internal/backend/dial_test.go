package backend_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

func TestDialLogsInWithScramAndReportsTheServersSessionState(t *testing.T) {
	su := superuser(t)
	for _, tc := range []struct {
		name string
		cfg  backend.Config
	}{
		{"over TCP", tcpConfig()},
		{"over a unix socket", unixConfig()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := unique("dial")
			tc.cfg.Params = map[string]string{"sslmode": "disable", "application_name": app}
			before := time.Now()
			c := dialWith(t, tc.cfg)

			var pid int32
			var user, db string
			err := su.QueryRow(testutil.Context(t),
				"select pid, usename, datname from pg_stat_activity where application_name = $1", app).
				Scan(&pid, &user, &db)
			if err != nil {
				t.Fatalf("find the backend by application_name %q: %v", app, err)
			}
			if c.PID() == 0 || uint32(pid) != c.PID() {
				t.Errorf("PID() = %d, pg_stat_activity says %d", c.PID(), pid)
			}
			if user != cluster.User || db != cluster.Database {
				t.Errorf("logged in as %s on %s, want %s on %s", user, db, cluster.User, cluster.Database)
			}
			if got := c.TxStatus(); got != 'I' {
				t.Errorf("TxStatus() = %q, want 'I'", got)
			}
			if c.Param("server_version") == "" {
				t.Error(`Param("server_version") is empty`)
			}
			if got := c.Param("application_name"); got != app {
				t.Errorf(`Param("application_name") = %q, want %q`, got, app)
			}
			if !c.Reusable() || c.Broken() != "" {
				t.Errorf("fresh connection: Reusable() = %v, Broken() = %q", c.Reusable(), c.Broken())
			}
			if c.Created().Before(before) || c.Created().After(time.Now()) {
				t.Errorf("Created() = %v, not during Dial", c.Created())
			}
			if c.NetConn() == nil || c.Reader() == nil || c.Reader().Buffered() != 0 {
				t.Error("a fresh connection should have a socket and an empty reader")
			}
		})
	}
}

func TestParamsReturnsACopyOfTheReportedParameters(t *testing.T) {
	c := dial(t)
	p := c.Params()
	if p["server_version"] != c.Param("server_version") || len(p) == 0 {
		t.Fatalf("Params() = %v disagrees with Param", p)
	}
	p["server_version"] = "mutated"
	p["made_up"] = "x"
	if c.Param("server_version") == "mutated" || c.Param("made_up") != "" {
		t.Error("mutating the map from Params() changed the connection's parameters")
	}
}

func TestDialFailsWithTheServersOwnError(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*backend.Config)
		code string
	}{
		{"for a wrong password", func(c *backend.Config) { c.Password = "wrong" }, "28P01"},
		{"for a database that does not exist", func(c *backend.Config) { c.Database = "no_such_database" }, "3D000"},
		{"for a bad runtime parameter value", func(c *backend.Config) { c.Params["work_mem"] = "banana" }, "22023"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tcpConfig()
			tc.edit(&cfg)
			c, err := backend.Dial(testutil.Context(t), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("error %v (%T) has no *pgconn.PgError in its chain", err, err)
			}
			if pgErr.Code != tc.code {
				t.Errorf("SQLSTATE = %s (%s), want %s", pgErr.Code, pgErr.Message, tc.code)
			}
		})
	}
}

func TestDialToAClosedPortFailsWithoutAServerError(t *testing.T) {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tcpConfig()
	cfg.Port = port
	c, err := backend.Dial(testutil.Context(t), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
	if code := pgCode(err); code != "" {
		t.Errorf("got a server error %s for a port nobody listens on: %v", code, err)
	}
}

func TestDialGivesUpAfterConnectTimeoutWhenTheServerIsSilent(t *testing.T) {
	_, port, err := net.SplitHostPort(testutil.SilentServer(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tcpConfig()
	cfg.Port, _ = strconv.Atoi(port)
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	c, err := backend.Dial(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v despite a 300ms ConnectTimeout", d)
	}
}

func TestDialLogsInWithAPasswordFullOfQuotesBackslashesAndSpaces(t *testing.T) {
	su := superuser(t)
	role := unique("bt_role")
	password := `it's a \ "test" \'`
	ctx := testutil.Context(t)
	if _, err := su.Exec(ctx, `create role "`+role+`" login password `+quote(password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = su.Exec(context.Background(), `drop role "`+role+`"`) })

	cfg := tcpConfig()
	cfg.User, cfg.Password = role, password
	c, err := backend.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial as %s: %v", role, err)
	}
	c.Close()
}

func TestDialIgnoresLibpqEnvironmentVariables(t *testing.T) {
	t.Setenv("PGAPPNAME", "from_the_environment")
	t.Setenv("PGOPTIONS", "-c statement_timeout=4321")
	for _, tc := range []struct {
		name   string
		params map[string]string
	}{
		{"when the URL names no runtime parameters", map[string]string{"sslmode": "disable"}},
		{"when the URL names application_name with an empty value",
			map[string]string{"sslmode": "disable", "application_name": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tcpConfig()
			cfg.Params = tc.params
			c := dialWith(t, cfg)
			if got := c.Param("application_name"); got != "" {
				t.Errorf("application_name = %q, want it empty: PGAPPNAME leaked", got)
			}
			assertSetting(t, c, "statement_timeout", "0")
		})
	}
}
