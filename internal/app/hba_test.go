package app_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// hbaFile writes an auth_hba_file and returns its path.
func hbaFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hba.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// socketDir is a short directory of its own for the unix socket (a socket
// path must fit in about 100 bytes; t.TempDir's can be longer).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// hbaConfig is auth_type hba with the given lines, the test user's SCRAM
// verifier and an md5 user in auth_file, a unix socket in a directory of
// its own, and routes (named databases logging in to the test database
// as the test user, whoever the client says it is) for dbs.
func hbaConfig(t *testing.T, hbaLines []string, dbs ...string) config.Config {
	t.Helper()
	cfg := txnConfig(2)
	cfg.Auth, cfg.AuthHBAFile = config.AuthHBA, hbaFile(t, hbaLines...)
	cfg.AuthFile = userlist(t, entry(cluster.User, storedVerifier(t)), entry("mduser", md5Secret("mduser", "md5-secret")))
	cfg.UnixSocketDir = socketDir(t)
	for _, db := range dbs {
		cfg.Databases[db] = config.Database{Name: db, Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)}
	}
	return cfg
}

// hbaLogin connects to database db as user with password (libpq keywords
// in extra, e.g. host=<socket dir>) and runs a query.
func hbaLogin(t *testing.T, s *valvetest.Server, db, user, password, extra string) error {
	t.Helper()
	return connectDSN(t, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=%s sslmode=disable %s",
		s.Port(), user, password, db, extra))
}

// wantAuthFailed checks err is the wrong-password answer for who.
func wantAuthFailed(t *testing.T, what string, err error, who string) {
	t.Helper()
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok || pe.Code != "28P01" || pe.Message != fmt.Sprintf("password authentication failed for user %q", who) {
		t.Errorf("%s: %v; want 28P01 password authentication failed for user %q", what, err, who)
	}
}

// A client a reject line stops, one no line matches, an unknown user and a
// wrong password all get the same 28P01 text, and each is first asked for
// SCRAM as a real user would be. The md5, scram and trust lines let their
// clients in.
func TestHBARejectNoMatchUnknownUserAndWrongPasswordLookTheSame(t *testing.T) {
	cfg := hbaConfig(t, []string{
		"# TYPE DATABASE USER ADDRESS METHOD",
		"host   rejected all  127.0.0.1/32 reject",
		"host   app      all  127.0.0.1/32 scram-sha-256",
		"host   md5db    all  127.0.0.1/32 md5",
		"host   trusted  all  127.0.0.1/32 trust",
	}, "app", "md5db", "rejected", "nomatch", "trusted")
	s := valvetest.Start(t, cfg)

	for name, err := range map[string]error{
		"scram":   hbaLogin(t, s, "app", cluster.User, cluster.Password, ""),
		"md5":     hbaLogin(t, s, "md5db", "mduser", "md5-secret", ""),
		"trusted": hbaLogin(t, s, "trusted", "anyone", "", ""),
	} {
		if err != nil {
			t.Errorf("%s login: %v", name, err)
		}
	}
	wantAuthFailed(t, "reject line", hbaLogin(t, s, "rejected", cluster.User, cluster.Password, ""), cluster.User)
	wantAuthFailed(t, "no line", hbaLogin(t, s, "nomatch", cluster.User, cluster.Password, ""), cluster.User)
	wantAuthFailed(t, "unknown user", hbaLogin(t, s, "app", "nobody", cluster.Password, ""), "nobody")
	wantAuthFailed(t, "wrong password", hbaLogin(t, s, "app", cluster.User, "not the password", ""), cluster.User)
	wantAuthFailed(t, "md5, wrong password", hbaLogin(t, s, "md5db", "mduser", "nope", ""), "mduser")

	for _, db := range []string{"rejected", "nomatch", "app"} {
		c := dialRaw(t, s)
		c.startup(pgproto3.ProtocolVersion30, map[string]string{"user": cluster.User, "database": db})
		if m, ok := c.receive().(*pgproto3.AuthenticationSASL); !ok {
			t.Errorf("database %s: first answer %T; want AuthenticationSASL, as for any user", db, m)
		}
	}
}

// A hostssl line matches only clients on TLS, hostnossl only the others.
func TestHBAHostSSLMatchesOnlyTLSClients(t *testing.T) {
	s, _, _ := tlsValve(t, "prefer", func(c *config.Config) {
		c.Auth, c.AuthHBAFile = config.AuthHBA, hbaFile(t,
			"hostssl   all all 127.0.0.1/32 scram-sha-256",
			"hostnossl all all 127.0.0.1/32 reject")
	})
	if err := connectDSN(t, dsn(s, "sslmode=require")); err != nil {
		t.Errorf("TLS client: %v", err)
	}
	wantAuthFailed(t, "client without TLS", connectDSN(t, dsn(s, "sslmode=disable")), cluster.User)
}

// psql logs in over the unix socket (-h <dir>), where client_tls_sslmode
// require does not apply, as in PgBouncer; the client's address is "unix".
func TestPsqlLogsInOverTheUnixSocket(t *testing.T) {
	dir := socketDir(t)
	s, _, _ := tlsValve(t, "require", func(c *config.Config) {
		c.Auth, c.AuthHBAFile = config.AuthHBA, hbaFile(t, "local all all scram-sha-256", "host all all all reject")
		c.UnixSocketDir, c.UnixSocketMode = dir, 0o700
	})
	fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", s.Port())))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket file: %v, %v; want mode 0700", fi, err)
	}
	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "psql"), "-X", "-At", "-h", dir, "-p", fmt.Sprint(s.Port()),
		"-U", cluster.User, "-d", pgtest.TestDatabase, "-c", "select 'through the socket'")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cluster.Password)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "through the socket" {
		t.Fatalf("psql: %v\n%s", err, out)
	}

	conn := connectSimple(t, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", dir, s.Port(), cluster.User, cluster.Password, pgtest.TestDatabase))
	defer conn.Close(t.Context())
	var remotes []string
	for _, si := range s.App.Sessions() {
		remotes = append(remotes, si.Remote)
	}
	if len(remotes) != 1 || remotes[0] != "unix" {
		t.Fatalf("sessions' addresses %q; want [unix]", remotes)
	}
	s.Stop()
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", s.Port()))); !os.IsNotExist(err) {
		t.Fatalf("socket file left after shutdown: %v", err)
	}
}

// peer lets in the operating system user running the test, under its own
// name, and nobody else; a name no local line names gets no further.
func TestHBAPeerAdmitsTheOSUserOverTheUnixSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer authentication is Linux only")
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	other := cluster.User
	if other == me.Username {
		other = "someone_else"
	}
	cfg := hbaConfig(t, []string{"local peerdb all peer", "local all all reject"}, "peerdb")
	s := valvetest.Start(t, cfg)
	at := func(user string) string {
		return fmt.Sprintf("host=%s port=%d user=%s dbname=peerdb", cfg.UnixSocketDir, s.Port(), user)
	}
	if err := connectDSN(t, at(me.Username)); err != nil {
		t.Fatalf("peer login as %s: %v", me.Username, err)
	}
	wantAuthFailed(t, "peer login as another user", connectDSN(t, at(other)), other)
	wantAuthFailed(t, "peer over TCP: no host line", hbaLogin(t, s, "peerdb", me.Username, "", ""), me.Username)
}

// A reload reads auth_hba_file again; a file that does not load changes
// nothing.
func TestReloadRereadsTheHBAFile(t *testing.T) {
	cfg := hbaConfig(t, []string{"host all all 127.0.0.1/32 reject"}, "app")
	s := valvetest.Start(t, cfg)
	wantAuthFailed(t, "before the reload", hbaLogin(t, s, "app", cluster.User, cluster.Password, ""), cluster.User)

	rewriteFile(t, cfg.AuthHBAFile, "host all all 127.0.0.1/32 scram-sha-256\n")
	s.App.Reload(cfg)
	if err := hbaLogin(t, s, "app", cluster.User, cluster.Password, ""); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
	rewriteFile(t, cfg.AuthHBAFile, "host all +admins 127.0.0.1/32 trust\n")
	s.App.Reload(cfg)
	if err := hbaLogin(t, s, "app", cluster.User, cluster.Password, ""); err != nil {
		t.Fatalf("a bad file replaced the rules in force: %v", err)
	}
}

// The hba file is checked against the rest of the configuration when it
// loads: password methods need auth_file, certificates need verified
// client certificates.
func TestHBAMethodsNeedWhatTheyCheckAgainst(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		line, want string
		edit       func(*config.Config)
	}{
		{"host all all all md5", "hba.conf:1: md5 checks passwords against auth_file; set auth_file",
			func(c *config.Config) { c.AuthFile = "" }},
		{"hostssl all all all cert", "hba.conf:1: client certificates need client_tls_sslmode verify-ca or verify-full",
			func(*config.Config) {}},
		{"host all all 10.0.0.1 md5", "hba.conf:1: invalid netmask", func(*config.Config) {}},
	} {
		cfg := hbaConfig(t, []string{tc.line})
		cfg.UnixSocketDir = ""
		tc.edit(&cfg)
		if _, err := app.New(cfg, quiet); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.line, err, tc.want)
		}
	}
}

func rewriteFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientcert=verify-full on a hostssl line wants the user's own
// certificate before the line's method runs; a cert line is the cert
// method.
func TestHBAClientCertAndCertLines(t *testing.T) {
	s, ca, _ := tlsValve(t, "verify-full", func(c *config.Config) {
		c.Auth, c.AuthHBAFile = config.AuthHBA, hbaFile(t,
			"hostssl certdb all 127.0.0.1/32 cert",
			"hostssl all    all 127.0.0.1/32 scram-sha-256 clientcert=verify-full")
		c.Databases["certdb"] = config.Database{Name: "certdb", Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)}
	})
	mine, theirs := ca.Client(t, cluster.User), ca.Client(t, "somebody-else")
	with := func(p certs.Pair, db, password string) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s",
			s.Port(), cluster.User, password, db, ca.File, p.Cert, p.Key)
	}
	if err := connectDSN(t, with(mine, pgtest.TestDatabase, cluster.Password)); err != nil {
		t.Errorf("own certificate and password: %v", err)
	}
	if err := connectDSN(t, with(mine, "certdb", "")); err != nil {
		t.Errorf("cert line, own certificate: %v", err)
	}
	for what, dsn := range map[string]string{
		"clientcert=verify-full, another user's certificate": with(theirs, pgtest.TestDatabase, cluster.Password),
		"cert line, another user's certificate":              with(theirs, "certdb", ""),
	} {
		pe, ok := errors.AsType[*pgconn.PgError](connectDSN(t, dsn))
		if !ok || pe.Code != "28000" || pe.Message != fmt.Sprintf("certificate authentication failed for user %q", cluster.User) {
			t.Errorf("%s: %v; want 28000 certificate authentication failed", what, pe)
		}
	}
	wantAuthFailed(t, "own certificate, wrong password", connectDSN(t, with(mine, pgtest.TestDatabase, "nope")), cluster.User)
}
