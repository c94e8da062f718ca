package backend_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &cluster, pgtest.Options{})) }

// tcpConfig logs in as the SCRAM test user over TCP.
func tcpConfig() backend.Config {
	return backend.Config{
		Host:           cluster.Host,
		Port:           cluster.Port,
		User:           cluster.User,
		Password:       cluster.Password,
		Database:       cluster.Database,
		Params:         map[string]string{"sslmode": "disable"},
		ConnectTimeout: 10 * time.Second,
	}
}

// unixConfig logs in as the test user over the cluster's unix socket.
func unixConfig() backend.Config {
	cfg := tcpConfig()
	cfg.Host = cluster.SocketDir
	return cfg
}

// dialWith opens a connection closed at the end of the test.
func dialWith(t *testing.T, cfg backend.Config) *backend.Conn {
	t.Helper()
	c, err := backend.Dial(testutil.Context(t), cfg)
	if err != nil {
		t.Fatalf("Dial(%s:%d): %v", cfg.Host, cfg.Port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dial(t *testing.T) *backend.Conn { return dialWith(t, tcpConfig()) }

// superuser opens a pgx connection as the cluster's superuser, to watch
// and signal the connections under test from the side.
func superuser(t *testing.T) *pgx.Conn {
	t.Helper()
	return testutil.Connect(t, cluster.SuperuserURL(cluster.Database))
}

var uniqueSeq atomic.Int64

// unique returns a name no other test (or -count repetition) uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), uniqueSeq.Add(1))
}

// backendState returns pg_stat_activity's state for pid, or found=false
// when no such backend exists.
func backendState(t *testing.T, su *pgx.Conn, pid uint32) (state string, found bool) {
	t.Helper()
	err := su.QueryRow(testutil.Context(t),
		"select coalesce(state, '') from pg_stat_activity where pid = $1", int32(pid)).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatalf("query pg_stat_activity: %v", err)
	}
	return state, true
}

// pgCode returns the SQLSTATE of a *pgconn.PgError in err's chain, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// quote is an SQL string literal as standard_conforming_strings reads it;
// it is deliberately not the package's own quoting.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// mustExec runs sql through the connection under test.
func mustExec(t *testing.T, c *backend.Conn, sql string) {
	t.Helper()
	if err := c.Exec(testutil.Context(t), sql); err != nil {
		t.Fatalf("Exec(%q): %v", sql, err)
	}
}

// assertSetting checks current_setting(name) inside the server session.
// Exec discards rows, so the check is a DO block that raises when the value
// differs and reports what it found.
func assertSetting(t *testing.T, c *backend.Conn, name, want string) {
	t.Helper()
	sql := fmt.Sprintf(`do $check$ begin
  if current_setting(%[1]s) is distinct from %[2]s then
    raise exception 'setting %%: got [%%]', %[1]s, current_setting(%[1]s);
  end if;
end $check$`, quote(name), quote(want))
	if err := c.Exec(testutil.Context(t), sql); err != nil {
		t.Errorf("current_setting(%q) should be %q: %v", name, want, err)
	}
}
