package app_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// certUser logs in to the TLS cluster with its client certificate only.
const certUser = "pgvalve_cert"

// tlsCluster starts a cluster with ssl on, whose certificate ca signed
// for the name localhost only, and whose pg_hba lets certUser in with a
// client certificate ca signed and nothing else.
func tlsCluster(t *testing.T, ca *certs.CA) *pgtest.Cluster {
	t.Helper()
	cert, key := ca.ServerFor(t, "server", "localhost").PEM(t)
	caPEM, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgtest.Start(pgtest.Options{
		TLS: &pgtest.TLS{Cert: cert, Key: key, CA: caPEM},
		HBA: []string{
			"hostssl all " + certUser + " 127.0.0.1/32 cert",
			"hostssl all " + certUser + " ::1/128 cert",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	su := testutil.Connect(t, c.SuperuserURL(c.Database))
	if _, err := su.Exec(testutil.Context(t), "create role "+certUser+" login"); err != nil {
		t.Fatal(err)
	}
	return c
}

// upstreamURL is a URL for c through host that names no sslmode, so
// server_tls_* decides.
func upstreamURL(c *pgtest.Cluster, host, user, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(host, strconv.Itoa(c.Port)), Path: "/" + c.Database}
	if password == "" {
		u.User = url.User(user)
	}
	return u.String()
}

// serverTLSValve is pgvalve in session mode in front of c through host,
// with server_tls_sslmode mode checked against caFile, and an admin
// console.
func serverTLSValve(t *testing.T, c *pgtest.Cluster, host, mode, caFile string) (*valvetest.Server, config.Config) {
	t.Helper()
	cfg := sessionConfig(2)
	cfg.Upstream = upstreamURL(c, host, c.User, c.Password)
	cfg.ServerTLS = config.TLS{SSLMode: mode, CAFile: caFile, Protocols: "secure", Ciphers: "default"}
	cfg.AdminUsers = []string{"admin"}
	return valvetest.Start(t, cfg), cfg
}

// sslThrough logs in to pgvalve as user and asks the server whether the
// connection serving it is over TLS; the client stays connected (holding
// its server, in session mode) until the test ends.
func sslThrough(t *testing.T, s *valvetest.Server, user, password, db string) (bool, *pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(testutil.Context(t), s.URL(user, password, db))
	if err != nil {
		return false, nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var on bool
	err = conn.QueryRow(testutil.Context(t), "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&on)
	return on, conn, err
}

// refusedForTLS checks that err is pgvalve's 08006 naming the TLS failure.
func refusedForTLS(t *testing.T, err error, want string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" ||
		!strings.HasPrefix(pgErr.Message, "server TLS failed") || !strings.Contains(pgErr.Message, want) {
		t.Fatalf("got %v, want 08006 \"server TLS failed ... %s\"", err, want)
	}
	t.Logf("the client is told: %s", pgErr.Message)
}

func TestServerTLSToAClusterWithItsOwnCA(t *testing.T) {
	ca := certs.NewCA(t, "cluster")
	c := tlsCluster(t, ca)
	wrong := certs.NewCA(t, "not-the-cluster's")

	t.Run("verify-full with the right CA logs in, the server sees TLS and SHOW SERVERS says which", func(t *testing.T) {
		s, _ := serverTLSValve(t, c, "localhost", "verify-full", ca.File)
		on, _, err := sslThrough(t, s, c.User, c.Password, c.Database)
		if err != nil || !on {
			t.Fatalf("pg_stat_ssl.ssl = %v, %v; want true", on, err)
		}
		console, err := consoleConn(t, s, "admin")
		if err != nil {
			t.Fatal(err)
		}
		rows := show(t, console, "SHOW SERVERS")
		if len(rows) != 1 || !strings.HasPrefix(rows[0]["tls"], "TLSv1.") || strings.Count(rows[0]["tls"], "/") < 1 {
			t.Fatalf("SHOW SERVERS: %v, want one server with its TLS", rows)
		}
	})
	t.Run("a CA that did not sign the server's certificate is refused with a clear error", func(t *testing.T) {
		s, _ := serverTLSValve(t, c, "localhost", "verify-full", wrong.File)
		_, _, err := sslThrough(t, s, c.User, c.Password, c.Database)
		refusedForTLS(t, err, "certificate signed by unknown authority")
	})
	t.Run("verify-full refuses a host name the certificate does not hold, verify-ca takes it", func(t *testing.T) {
		s, _ := serverTLSValve(t, c, "127.0.0.1", "verify-full", ca.File)
		_, _, err := sslThrough(t, s, c.User, c.Password, c.Database)
		refusedForTLS(t, err, "127.0.0.1")
		s, _ = serverTLSValve(t, c, "127.0.0.1", "verify-ca", ca.File)
		if on, _, err := sslThrough(t, s, c.User, c.Password, c.Database); err != nil || !on {
			t.Fatalf("verify-ca: ssl %v, %v", on, err)
		}
	})
	t.Run("disable logs in without TLS to a server that offers it", func(t *testing.T) {
		s, _ := serverTLSValve(t, c, "127.0.0.1", "disable", "")
		if on, _, err := sslThrough(t, s, c.User, c.Password, c.Database); err != nil || on {
			t.Fatalf("pg_stat_ssl.ssl = %v, %v; want false", on, err)
		}
	})
	t.Run("pgvalve's client certificate logs in where pg_hba asks for cert", func(t *testing.T) {
		pair := ca.Client(t, certUser)
		cfg := sessionConfig(2)
		cfg.Upstream = upstreamURL(c, "localhost", certUser, "")
		cfg.ServerTLS = config.TLS{SSLMode: "verify-full", CAFile: ca.File, CertFile: pair.Cert, KeyFile: pair.Key,
			Protocols: "secure", Ciphers: "default"}
		s := valvetest.Start(t, cfg)
		on, conn, err := sslThrough(t, s, certUser, "", c.Database)
		if err != nil || !on {
			t.Fatalf("ssl %v, %v", on, err)
		}
		var who string
		if err := conn.QueryRow(testutil.Context(t), "select current_user").Scan(&who); err != nil || who != certUser {
			t.Fatalf("current_user %q, %v", who, err)
		}
	})
	t.Run("a reload that changes the CA file's contents renews servers without dropping clients", func(t *testing.T) {
		caCopy := t.TempDir() + "/root.crt"
		copyFile(t, ca.File, caCopy)
		s, cfg := serverTLSValve(t, c, "localhost", "verify-full", caCopy)
		_, held, err := sslThrough(t, s, c.User, c.Password, c.Database)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, wrong.File, caCopy)
		s.App.Reload(cfg)
		if st, _ := s.PoolStats(c.Database + "/" + c.User); st.ServersToRenew != 1 {
			t.Fatalf("ServersToRenew %d after the reload, want the held server", st.ServersToRenew)
		}
		_, _, err = sslThrough(t, s, c.User, c.Password, c.Database)
		refusedForTLS(t, err, "unknown authority")
		testutil.MustExec(t, held, "select 1") // its server goes when it leaves
		held.Close(testutil.Context(t))
		testutil.Eventually(t, "the held server to close once its client left", func() bool {
			st, _ := s.PoolStats(c.Database + "/" + c.User)
			return st.ServersToRenew == 0
		})
		copyFile(t, ca.File, caCopy)
		s.App.Reload(cfg)
		if on, _, err := sslThrough(t, s, c.User, c.Password, c.Database); err != nil || !on {
			t.Fatalf("after the right CA came back: ssl %v, %v", on, err)
		}
		s.App.Reload(cfg) // nothing changed: nothing renewed
		if st, _ := s.PoolStats(c.Database + "/" + c.User); st.ServersToRenew != 0 {
			t.Fatalf("ServersToRenew %d after a reload that changed nothing", st.ServersToRenew)
		}
	})
}

func TestServerTLSRequireRefusesAServerWithoutSSL(t *testing.T) {
	cfg := sessionConfig(2)
	cfg.Upstream = upstreamURL(cluster, cluster.Host, cluster.User, cluster.Password)
	cfg.ServerTLS.SSLMode = "require"
	s := valvetest.Start(t, cfg)
	_, _, err := sslThrough(t, s, cluster.User, cluster.Password, pgtest.TestDatabase)
	refusedForTLS(t, err, "does not accept TLS")

	// The default, prefer, falls back on plaintext there.
	cfg.ServerTLS.SSLMode = "prefer"
	s = valvetest.Start(t, cfg)
	if on, _, err := sslThrough(t, s, cluster.User, cluster.Password, pgtest.TestDatabase); err != nil || on {
		t.Fatalf("prefer against ssl=off: ssl %v, %v", on, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
