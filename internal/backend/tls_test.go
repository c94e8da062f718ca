package backend_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// attempts returns server_tls_sslmode mode checked against caFile.
func attempts(t *testing.T, mode, caFile string) *tlsconf.Upstream {
	t.Helper()
	u, err := tlsconf.NewUpstream(config.TLS{SSLMode: mode, CAFile: caFile, Protocols: "secure", Ciphers: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// withTLS is cfg for cluster c, with u in place of the URL's sslmode.
func withTLS(cfg backend.Config, u *tlsconf.Upstream) backend.Config {
	cfg.Params = map[string]string{}
	cfg.TLS = u.Attempts
	return cfg
}

const sslInUse = `do $check$ begin
  if not (select ssl from pg_stat_ssl where pid = pg_backend_pid()) then
    raise exception 'this connection is not over TLS';
  end if;
end $check$`

func TestServerTLSIsSpokenCheckedAndWatchedOverTheTLSConnection(t *testing.T) {
	ca := certs.NewCA(t, "backend")
	cert, key := ca.Server(t, "server").PEM(t)
	tc, err := pgtest.Start(pgtest.Options{TLS: &pgtest.TLS{Cert: cert, Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tc.Stop() })
	base := tcpConfig()
	base.Port = tc.Port
	base.User, base.Password, base.Database = tc.User, tc.Password, tc.Database

	t.Run("verify-full logs in over TLS and the relay's reads, writes and peeks work on it", func(t *testing.T) {
		c := dialWith(t, withTLS(base, attempts(t, "verify-full", ca.File)))
		if cs, ok := c.TLS(); !ok || !strings.HasPrefix(tlsconf.Describe(cs), "TLSv1.") {
			t.Fatalf("TLS() = %v, %v", ok, cs.Version)
		}
		mustExec(t, c, sslInUse)
		for range 3 {
			if !c.Alive() || !c.Reusable() {
				t.Fatalf("idle TLS connection: Alive %v Reusable %v (%s)", c.Alive(), c.Reusable(), c.Broken())
			}
		}
		su := testutil.Connect(t, tc.SuperuserURL(tc.Database))
		var ok bool
		if err := su.QueryRow(testutil.Context(t), "select pg_terminate_backend($1)", int32(c.PID())).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend: %v %v", ok, err)
		}
		testutil.Eventually(t, "Alive() to see the terminated backend through TLS", func() bool { return !c.Alive() })
	})
	t.Run("a wrong CA is a TLSError naming the certificate", func(t *testing.T) {
		other := certs.NewCA(t, "other")
		_, err := backend.Dial(testutil.Context(t), withTLS(base, attempts(t, "verify-ca", other.File)))
		var tlsErr *backend.TLSError
		if !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Dial: %v, want a TLSError about the certificate", err)
		}
	})
	t.Run("a URL naming sslmode decides for its route", func(t *testing.T) {
		cfg := withTLS(base, attempts(t, "verify-full", certs.NewCA(t, "unused").File))
		cfg.Params["sslmode"] = "disable"
		if c := dialWith(t, cfg); func() bool { _, ok := c.TLS(); return ok }() {
			t.Fatal("sslmode=disable in the URL: the connection is over TLS")
		}
	})
}

func TestServerTLSRequiredOfAServerWithoutSSLIsATLSErrorAndUnixSocketsStayPlain(t *testing.T) {
	_, err := backend.Dial(testutil.Context(t), withTLS(tcpConfig(), attempts(t, "require", "")))
	var tlsErr *backend.TLSError
	if !errors.As(err, &tlsErr) || !strings.Contains(err.Error(), "does not accept TLS") {
		t.Fatalf("require against ssl=off: %v", err)
	}
	c := dialWith(t, withTLS(unixConfig(), attempts(t, "require", "")))
	if _, ok := c.TLS(); ok {
		t.Fatal("a unix socket connection went over TLS")
	}
	mustExec(t, c, "select 1")
}

// With sslmode=prefer, a server without TLS is tried again in the clear;
// when that attempt fails too (a wrong password), the login error is
// what the server said, not the TLS refusal of the first attempt (the
// benchmark's SCRAM logins were once reported as "does not accept TLS").
func TestAPreferredTLSLoginThatFailsInTheClearSaysWhy(t *testing.T) {
	cfg := withTLS(tcpConfig(), attempts(t, "prefer", ""))
	cfg.Password = "not the password"
	_, err := backend.Dial(testutil.Context(t), cfg)
	var tlsErr *backend.TLSError
	if err == nil || errors.As(err, &tlsErr) || !strings.Contains(err.Error(), "28P01") {
		t.Fatalf("prefer against ssl=off with a wrong password: %v, want the server's 28P01 and no TLSError", err)
	}
}
