package app_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// cluster is the real PostgreSQL every test in this package talks to.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, &cluster, pgtest.Options{Settings: map[string]string{"max_connections": "200"}}))
}

// sessionConfig is pgvalve in session mode in front of the test cluster,
// logging in as the test user with its password.
func sessionConfig(poolSize int) config.Config {
	cfg := config.Default()
	cfg.Upstream = cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	cfg.PoolMode = config.PoolSession
	cfg.PoolSize = poolSize
	cfg.UnixSocketDir = "" // no socket in the shared /tmp; a test that wants one names its own directory
	return cfg
}

// startValve runs pgvalve for the test and returns it with a URL for the
// test user through it.
func startValve(t *testing.T, cfg config.Config) (*valvetest.Server, string) {
	t.Helper()
	s := valvetest.Start(t, cfg)
	return s, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
}

// direct is a superuser connection straight to PostgreSQL, for checks on
// pg_stat_activity.
func direct(t *testing.T) *pgx.Conn {
	t.Helper()
	return testutil.Connect(t, cluster.SuperuserURL(pgtest.TestDatabase))
}

// waitNoBackends waits for earlier tests' servers to leave PostgreSQL, so
// that a test counting backends counts only its own.
func waitNoBackends(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	ctx := testutil.Context(t)
	testutil.EventuallyWithin(t, 15*time.Second, "earlier tests' servers to go", func() bool {
		n, err := backendsOf(ctx, admin, cluster.User)
		return err == nil && n == 0
	})
}

// backendsOf counts client backends of the test user in pg_stat_activity,
// leaving out the calling connection.
func backendsOf(ctx context.Context, conn *pgx.Conn, user string) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `select count(*) from pg_stat_activity
		where usename = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()`, user).Scan(&n)
	return n, err
}
