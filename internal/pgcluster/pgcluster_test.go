package pgcluster_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/pgcluster"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var cluster *pgcluster.Cluster

// TestMain starts the shared cluster and checks for leaked goroutines; the
// internal tests in this directory run under it too.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, &cluster, pgtest.Options{}))
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestTheScramUserCanConnectOverTCPToTheDefaultDatabase(t *testing.T) {
	if cluster.User != pgcluster.DefaultUser || cluster.Database != pgcluster.DefaultDatabase {
		t.Fatalf("User, Database = %q, %q; want the defaults", cluster.User, cluster.Database)
	}
	conn := testutil.Connect(t, cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	if got := queryString(t, conn, "select current_user"); got != pgtest.TestUser {
		t.Fatalf("current_user = %q, want %q", got, pgtest.TestUser)
	}
	conn = testutil.Connect(t, cluster.UserURL())
	if got := queryString(t, conn, "select current_user || '/' || current_database()"); got != "pgvalve_test/pgvalve_test" {
		t.Fatalf("UserURL logs in as %q", got)
	}
}

func TestAWrongPasswordIsRejectedWithSQLState28P01(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cluster.URL(cluster.User, "wrong", cluster.Database))
	if err == nil {
		conn.Close(ctx)
		t.Fatal("connecting with a wrong password succeeded")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("err = %v, want SQLSTATE 28P01", err)
	}
}

func TestTheSuperuserURLConnectsAsTheSuperuserAndPasswordsAreScram(t *testing.T) {
	conn := testutil.Connect(t, cluster.SuperuserURL("postgres"))
	if got := queryString(t, conn, "select current_user"); got != cluster.Superuser {
		t.Fatalf("current_user = %q, want %q", got, cluster.Superuser)
	}
	var n int
	err := conn.QueryRow(context.Background(),
		"select count(*) from pg_authid where rolname = any($1) and rolpassword like 'SCRAM-SHA-256$%'",
		[]string{cluster.Superuser, cluster.User}).Scan(&n)
	if err != nil || n != 2 {
		t.Fatalf("SCRAM-hashed passwords: n=%d err=%v, want 2", n, err)
	}
}

func TestTheRoleCanCreateDatabasesAndSeeOtherSessions(t *testing.T) {
	su := testutil.Connect(t, cluster.SuperuserURL("postgres"))
	superPID := queryString(t, su, "select pg_backend_pid()::text")

	conn := testutil.Connect(t, cluster.UserURL())
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "create database pgcluster_scratch"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	if _, err := conn.Exec(ctx, "drop database pgcluster_scratch"); err != nil {
		t.Fatalf("drop database: %v", err)
	}
	// pg_read_all_stats shows other roles' queries instead of "<insufficient privilege>".
	q := queryString(t, conn, "select coalesce(query, '') from pg_stat_activity where pid = "+superPID)
	if q == "<insufficient privilege>" {
		t.Fatalf("the role cannot read other sessions' activity")
	}
}

func TestTheServerComesBackOnTheSamePortAfterAFastStop(t *testing.T) {
	port := cluster.Port
	if err := cluster.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, cluster.SuperuserURL("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := cluster.StopServer("fast"); err != nil {
		t.Fatalf("stopping a stopped server: %v", err)
	}
	if err := cluster.StartServer(); err != nil {
		t.Fatal(err)
	}
	if cluster.Port != port {
		t.Fatalf("port changed from %d to %d", port, cluster.Port)
	}
	testutil.Connect(t, cluster.UserURL())
}

func TestTheServerSurvivesAnImmediateRestart(t *testing.T) {
	if err := cluster.Restart("immediate"); err != nil {
		t.Fatal(err)
	}
	testutil.Connect(t, cluster.SuperuserURL("postgres"))
}

func TestAnUnknownShutdownModeIsRejected(t *testing.T) {
	if err := cluster.StopServer("gentle"); err == nil || !strings.Contains(err.Error(), "gentle") {
		t.Fatalf("err = %v, want one naming the mode", err)
	}
}

func TestFindBinDirReturnsADirectoryContainingInitdb(t *testing.T) {
	dir, err := pgcluster.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "initdb")); err != nil || fi.IsDir() {
		t.Fatalf("%s has no initdb: %v", dir, err)
	}
}

func TestPsqlAndPgBenchAreFound(t *testing.T) {
	for _, p := range []string{cluster.Psql(), cluster.PgBench()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestASecondClusterHonoursSettingsAndNamesAndStopsCleanlyTwice(t *testing.T) {
	c, err := pgcluster.Start(pgcluster.Options{
		Settings: map[string]string{"max_connections": "42"},
		User:     "app",
		Database: "app db",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port == cluster.Port {
		t.Fatalf("second cluster reused port %d", c.Port)
	}
	if c.User != "app" || c.Database != "app db" {
		t.Fatalf("User, Database = %q, %q", c.User, c.Database)
	}
	conn := testutil.Connect(t, c.UserURL())
	if got := queryString(t, conn, "show max_connections"); got != "42" {
		t.Errorf("max_connections = %q, want 42", got)
	}
	if got := queryString(t, conn, "select current_user || '/' || current_database()"); got != "app/app db" {
		t.Errorf("logged in as %q, want app/app db", got)
	}
	conn.Close(context.Background())
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(c.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir still there after Stop: %v", err)
	}
}

func TestStartRejectsNamesANewClusterAlreadyHas(t *testing.T) {
	for _, opts := range []pgcluster.Options{
		{User: cluster.Superuser},
		{Database: "postgres"},
		{Database: "template1"},
	} {
		c, err := pgcluster.Start(opts)
		if err == nil {
			c.Stop()
			t.Errorf("Start(%+v) succeeded", opts)
		} else if !strings.Contains(err.Error(), "pick another") {
			t.Errorf("Start(%+v): %v", opts, err)
		}
	}
}

func TestURLEscapesUserPasswordAndDatabase(t *testing.T) {
	c := &pgcluster.Cluster{Host: "127.0.0.1", Port: 5999}
	got := c.URL("us@r", "p:ss/w rd?", "my db")
	cfg, err := pgx.ParseConfig(got)
	if err != nil {
		t.Fatalf("parse %s: %v", got, err)
	}
	if cfg.User != "us@r" || cfg.Password != "p:ss/w rd?" || cfg.Database != "my db" ||
		cfg.Host != "127.0.0.1" || cfg.Port != 5999 || cfg.TLSConfig != nil {
		t.Fatalf("%s parsed to user=%q password=%q db=%q host=%q port=%d tls=%v",
			got, cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port, cfg.TLSConfig != nil)
	}
	if got := c.URL("u", "", "d"); got != "postgres://u@127.0.0.1:5999/d?sslmode=disable" {
		t.Fatalf("URL without a password = %s", got)
	}
}

func TestAClusterWithTLSServesVerifiedTLSAndPutsHBALinesFirst(t *testing.T) {
	ca := certs.NewCA(t, "pgcluster")
	cert, key := ca.Server(t, "server").PEM(t)
	c, err := pgcluster.Start(pgcluster.Options{
		TLS: &pgcluster.TLS{Cert: cert, Key: key},
		HBA: []string{"hostnossl all all 127.0.0.1/32 reject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	conn := testutil.Connect(t, strings.Replace(c.UserURL(), "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(ca.File), 1))
	if got := queryString(t, conn, "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()"); got != "true" {
		t.Fatalf("pg_stat_ssl.ssl = %s over sslmode=verify-full", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, err := pgx.Connect(ctx, c.UserURL()) // sslmode=disable
	if err == nil {
		plain.Close(ctx)
		t.Fatal("a plaintext login passed the hostnossl reject line")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28000" {
		t.Fatalf("plaintext login: %v, want 28000 from pg_hba", err)
	}
}
