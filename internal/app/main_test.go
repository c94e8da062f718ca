package app_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
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
	return cfg
}

// startValve runs pgvalve for the test and returns it with a URL for the
// test user through it.
func startValve(t *testing.T, cfg config.Config) (*valvetest.Server, string) {
	t.Helper()
	s := valvetest.Start(t, cfg)
	return s, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// direct is a superuser connection straight to PostgreSQL, for checks on
// pg_stat_activity.
func direct(t *testing.T) *pgx.Conn {
	t.Helper()
	return connect(t, cluster.SuperuserURL(pgtest.TestDatabase))
}

// backendsOf counts client backends of the test user in pg_stat_activity,
// leaving out the calling connection.
func backendsOf(ctx context.Context, conn *pgx.Conn, user string) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `select count(*) from pg_stat_activity
		where usename = $1 and backend_type = 'client backend' and pid <> pg_backend_pid()`, user).Scan(&n)
	return n, err
}
