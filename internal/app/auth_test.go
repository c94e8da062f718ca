package app_test

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// storedVerifier is the SCRAM verifier PostgreSQL itself keeps for the
// test user: pgvalve must accept the secret PostgreSQL wrote.
func storedVerifier(t *testing.T) string {
	t.Helper()
	var v string
	if err := direct(t).QueryRow(testutil.Context(t), "select rolpassword from pg_authid where rolname = $1", cluster.User).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$") {
		t.Fatalf("the test user's stored password is not a SCRAM verifier: %.14s…", v)
	}
	return v
}

// userlist writes an auth_file with the given lines and returns its path.
func userlist(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "userlist.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authValve starts pgvalve checking clients against an auth_file with the
// given lines, under auth_type mode.
func authValve(t *testing.T, mode config.AuthMode, lines ...string) *valvetest.Server {
	t.Helper()
	cfg := txnConfig(2)
	cfg.Auth, cfg.AuthFile = mode, userlist(t, lines...)
	cfg.AdminUsers = []string{"admin"}
	return valvetest.Start(t, cfg)
}

func entry(user, secret string) string { return fmt.Sprintf("%q %q", user, secret) }

// login connects as user with password and runs a query.
func login(t *testing.T, s *valvetest.Server, user, password string) error {
	t.Helper()
	c, err := pgx.Connect(testutil.Context(t), s.URL(user, password, pgtest.TestDatabase))
	if err != nil {
		return err
	}
	defer c.Close(testutil.Context(t))
	var one int
	return c.QueryRow(testutil.Context(t), "select 1").Scan(&one)
}

func md5Secret(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// SCRAM against the verifier PostgreSQL stored, md5 against an md5 hash
// and against that same verifier (PostgreSQL then asks for SCRAM), a plain
// secret under either: each logs in with the right password and queries.
func TestClientsLogInWithSCRAMAndMD5AgainstAuthFile(t *testing.T) {
	verifier := storedVerifier(t)
	cases := []struct {
		name   string
		mode   config.AuthMode
		secret string
	}{
		{"scram, PostgreSQL's own verifier", config.AuthSCRAM, verifier},
		{"scram, plain secret", config.AuthSCRAM, cluster.Password},
		{"md5, md5 secret", config.AuthMD5, md5Secret(cluster.User, cluster.Password)},
		{"md5, plain secret", config.AuthMD5, cluster.Password},
		{"md5, SCRAM verifier: SCRAM instead", config.AuthMD5, verifier},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := authValve(t, tc.mode, entry(cluster.User, tc.secret))
			if err := login(t, s, cluster.User, cluster.Password); err != nil {
				t.Fatalf("login: %v", err)
			}
		})
	}
}

// psql, with its own libpq, logs in with SCRAM.
func TestPsqlLogsInWithSCRAM(t *testing.T) {
	s := authValve(t, config.AuthSCRAM, entry(cluster.User, storedVerifier(t)))
	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	psql := filepath.Join(bin, "psql")
	cmd := exec.Command(psql, "-X", "-At", "-c", "select 'through pgvalve'",
		fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", s.Port(), cluster.User, pgtest.TestDatabase))
	cmd.Env = append(os.Environ(), "PGPASSWORD="+cluster.Password)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "through pgvalve" {
		t.Fatalf("psql: %v\n%s", err, out)
	}
}

// A wrong password and an unknown user get the same 28P01 message (the
// user's name aside), so a client cannot tell which names exist.
func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	for _, mode := range []config.AuthMode{config.AuthSCRAM, config.AuthMD5} {
		t.Run(string(mode), func(t *testing.T) {
			s := authValve(t, mode, entry(cluster.User, cluster.Password))
			wrong := login(t, s, cluster.User, "not the password")
			unknown := login(t, s, "nobody", cluster.Password)
			for who, err := range map[string]error{cluster.User: wrong, "nobody": unknown} {
				pe, ok := errors.AsType[*pgconn.PgError](err)
				if !ok || pe.Code != "28P01" ||
					pe.Message != fmt.Sprintf("password authentication failed for user %q", who) {
					t.Errorf("login as %s: %v; want 28P01 password authentication failed for user %q", who, err, who)
				}
			}
		})
	}
}

// auth_type plain sends the password in cleartext: a configuration that
// lets a client without TLS use it is refused.
func TestCleartextPasswordsNeedTLS(t *testing.T) {
	cfg := txnConfig(1)
	cfg.Auth, cfg.AuthFile = config.AuthPlain, "userlist.txt"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "client_tls_sslmode require") {
		t.Fatalf("plain without required TLS: %v; want it refused", err)
	}
}

// A client that sends something else than the SASL answer is told 08P01,
// never just dropped.
func TestABrokenSCRAMExchangeGets08P01(t *testing.T) {
	s := authValve(t, config.AuthSCRAM, entry(cluster.User, cluster.Password))
	c := dialRaw(t, s)
	c.startup(pgproto3.ProtocolVersion30, testUserParams())
	if _, ok := c.receive().(*pgproto3.AuthenticationSASL); !ok {
		t.Fatal("no SASL request")
	}
	c.send(&pgproto3.Query{String: "select 1"})
	c.expectFatalThenEOF("08P01")
}

// The admin console logs its users in the same way.
func TestTheConsoleLogsInWithSCRAM(t *testing.T) {
	s := authValve(t, config.AuthSCRAM, entry("admin", "admin-secret"))
	c, err := consoleLogin(t, s, "admin", "admin-secret")
	if err != nil {
		t.Fatalf("console login with SCRAM: %v", err)
	}
	if rows := show(t, c, "SHOW VERSION"); len(rows) != 1 {
		t.Fatalf("SHOW VERSION: %v", rows)
	}
}

// A client whose login outlasts client_login_timeout is told so (08P01,
// naming the setting) whether it sent nothing or stopped in the middle of
// SCRAM, instead of being closed silently.
func TestALoginThatTimesOutIsToldWhy(t *testing.T) {
	cfg := txnConfig(1)
	cfg.Auth, cfg.AuthFile = config.AuthSCRAM, userlist(t, entry(cluster.User, cluster.Password))
	cfg.ClientLoginTimeout = 200 * time.Millisecond
	s := valvetest.Start(t, cfg)

	silent := dialRaw(t, s)
	if e := silent.expectFatalThenEOF("08P01"); !strings.Contains(e.Message, "client_login_timeout") {
		t.Errorf("silent client told %q; want client_login_timeout named", e.Message)
	}
	halfway := dialRaw(t, s)
	halfway.startup(pgproto3.ProtocolVersion30, testUserParams())
	if _, ok := halfway.receive().(*pgproto3.AuthenticationSASL); !ok {
		t.Fatal("no SASL request")
	}
	halfway.expectFatalThenEOF("08P01")
}

// Garbage in place of a passthrough password gets 08P01, not a closed
// socket.
func TestGarbageInPlaceOfAPasswordGets08P01(t *testing.T) {
	cfg := sessionConfig(1)
	cfg.Auth = config.AuthPassthrough
	s := valvetest.Start(t, cfg)
	c := dialRaw(t, s)
	c.startup(pgproto3.ProtocolVersion30, testUserParams())
	if _, ok := c.receive().(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatal("no password request")
	}
	c.write([]byte("this is not a message at all"))
	c.expectFatalThenEOF("08P01")
}
