package app_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// The auth_user and its lookup function, as the README sets them up.
const (
	aqAuthUser     = "pgvalve_auth"
	aqAuthPassword = "auth-user-pw"
	aqQuery        = "SELECT usename, passwd FROM pgvalve_lookup($1)"
	aqDatabase     = "aqdb" // the route clients use
)

// authQueryCluster creates, as the superuser, the SECURITY DEFINER lookup
// function over pg_shadow and an auth_user that alone may run it, and one
// login role per name in users (name → password; stored as md5 when the
// name starts with "aq_md5", else as a SCRAM verifier, or with no
// password when it is ""). Everything is dropped when the test ends.
func authQueryCluster(t *testing.T, users map[string]string) {
	t.Helper()
	admin := direct(t)
	drop := func() {
		for name := range users {
			testutil.MustExec(t, admin, fmt.Sprintf("DROP ROLE IF EXISTS %q", name))
		}
		testutil.MustExec(t, admin, "DROP FUNCTION IF EXISTS pgvalve_lookup(text)")
		testutil.MustExec(t, admin, "DROP ROLE IF EXISTS "+aqAuthUser)
	}
	drop()
	t.Cleanup(drop)
	for _, sql := range []string{
		"SET password_encryption = 'scram-sha-256'",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", aqAuthUser, aqAuthPassword),
		`CREATE FUNCTION pgvalve_lookup(text) RETURNS TABLE(usename name, passwd text)
		 LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
		 AS $$ SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1 $$`,
		"REVOKE ALL ON FUNCTION pgvalve_lookup(text) FROM PUBLIC",
		"GRANT EXECUTE ON FUNCTION pgvalve_lookup(text) TO " + aqAuthUser,
	} {
		testutil.MustExec(t, admin, sql)
	}
	for name, pw := range users {
		enc := "scram-sha-256"
		if strings.HasPrefix(name, "aq_md5") {
			enc = "md5"
		}
		testutil.MustExec(t, admin, "SET password_encryption = '"+enc+"'")
		role := fmt.Sprintf("CREATE ROLE %q LOGIN", name)
		if pw != "" {
			role += " PASSWORD '" + pw + "'"
		}
		testutil.MustExec(t, admin, role)
	}
}

// authQueryConfig is pgvalve checking clients of route aqdb under mode:
// auth_file lists only the auth_user (its password, as PgBouncer takes
// it); every other user is looked up with auth_query. The route logs in
// to PostgreSQL as the test user, whatever the client's name.
func authQueryConfig(t *testing.T, mode config.AuthMode) config.Config {
	t.Helper()
	cfg := txnConfig(2)
	cfg.Auth = mode
	cfg.AuthFile = userlist(t, entry(aqAuthUser, aqAuthPassword))
	cfg.AuthUser, cfg.AuthQuery = aqAuthUser, aqQuery
	cfg.Databases = map[string]config.Database{
		aqDatabase: {Name: aqDatabase, Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)},
	}
	return cfg
}

func aqLogin(t *testing.T, s *valvetest.Server, user, password string) error {
	t.Helper()
	return loginTo(t, s.URL(user, password, aqDatabase))
}

// loginTo connects to url and runs a query.
func loginTo(t *testing.T, url string) error {
	t.Helper()
	c, err := pgconn.Connect(testutil.Context(t), url)
	if err != nil {
		return err
	}
	defer c.Close(testutil.Context(t))
	_, err = c.Exec(testutil.Context(t), "select 1").ReadAll()
	return err
}

func pgCode(err error) (code, msg string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.Message
	}
	return "", fmt.Sprint(err)
}

// A user auth_file does not list logs in with SCRAM against the verifier
// PostgreSQL stores, found through the SECURITY DEFINER function, with
// pgx and with psql.
func TestAuthQueryUserLogsInWithSCRAMThroughPgxAndPsql(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw"})
	s := valvetest.Start(t, authQueryConfig(t, config.AuthSCRAM))
	if err := aqLogin(t, s, "aq_scram", "scram-pw"); err != nil {
		t.Fatalf("pgx: %v", err)
	}
	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "psql"), "-X", "-At", "-c", "select 'through pgvalve'",
		fmt.Sprintf("host=127.0.0.1 port=%d user=aq_scram dbname=%s sslmode=disable", s.Port(), aqDatabase))
	cmd.Env = append(os.Environ(), "PGPASSWORD=scram-pw")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "through pgvalve" {
		t.Fatalf("psql: %v\n%s", err, out)
	}
}

// A user PostgreSQL stores as md5 logs in with md5; under auth_type md5 a
// SCRAM-stored user is asked for SCRAM instead, as PostgreSQL does.
func TestAuthQueryMD5StoredUserLogsInWithMD5(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_md5": "md5-pw", "aq_scram": "scram-pw"})
	s := valvetest.Start(t, authQueryConfig(t, config.AuthMD5))
	for user, pw := range map[string]string{"aq_md5": "md5-pw", "aq_scram": "scram-pw"} {
		if err := aqLogin(t, s, user, pw); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	}
	if code, _ := pgCode(aqLogin(t, s, "aq_md5", "wrong")); code != "28P01" {
		t.Errorf("md5 user, wrong password: code %q; want 28P01", code)
	}
}

// A wrong password, a user PostgreSQL does not know, a role without a
// password and a name that would break an interpolated query all get the
// same 28P01 message (the name is a parameter, never SQL).
func TestAuthQueryWrongPasswordAndUnknownUserGetTheSame28P01(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw", "aq_nopw": ""})
	cfg := authQueryConfig(t, config.AuthSCRAM)
	cfg.ClientLoginTimeout = time.Minute // room for the failure backoff
	s := valvetest.Start(t, cfg)
	for _, user := range []string{"aq_scram", "aq_nobody", "aq_nopw", "o'brien'); drop table x; --"} {
		code, msg := pgCode(aqLogin(t, s, user, "not-the-password"))
		want := fmt.Sprintf("password authentication failed for user %q", user)
		if code != "28P01" || msg != want {
			t.Errorf("%s: %s %q; want 28P01 %q", user, code, msg, want)
		}
	}
}

// After ALTER ROLE ... PASSWORD the old password stops working within
// the cache time, and the new one works.
func TestAuthQueryPasswordChangeReachesLoginsWithinTheCacheTime(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "old-pw"})
	s := valvetest.Start(t, authQueryConfig(t, config.AuthSCRAM))
	if err := aqLogin(t, s, "aq_scram", "old-pw"); err != nil {
		t.Fatalf("old password before the change: %v", err)
	}
	testutil.MustExec(t, direct(t), "ALTER ROLE aq_scram PASSWORD 'new-pw'")
	testutil.EventuallyWithin(t, 60*time.Second, "the old password to be refused", func() bool {
		code, _ := pgCode(aqLogin(t, s, "aq_scram", "old-pw"))
		return code == "28P01"
	})
	if err := aqLogin(t, s, "aq_scram", "new-pw"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// When auth_query cannot be run the client is told so at once, not kept
// waiting: F0000 when the function is gone or auth_user cannot log in,
// 08006 when the server cannot be reached. The log says why and holds
// neither the auth_user's password nor a stored secret.
func TestAuthQueryFailureGivesAClearErrorAndTheLogNoSecret(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw"})
	verifier := storedSecret(t, "aq_scram")

	cfg := authQueryConfig(t, config.AuthSCRAM)
	s, _, logs := startLogged(t, cfg)
	testutil.MustExec(t, direct(t), "DROP FUNCTION pgvalve_lookup(text)")
	code, msg := pgCode(aqLogin(t, s, "aq_scram", "scram-pw"))
	if code != "F0000" || msg != `could not look up user "aq_scram": auth_query failed (pgvalve configuration error)` {
		t.Errorf("function dropped: %s %q", code, msg)
	}
	if !strings.Contains(logs.String(), "function pgvalve_lookup(unknown) does not exist") {
		t.Errorf("the log does not say the function is missing:\n%s", logs)
	}

	wrong := authQueryConfig(t, config.AuthSCRAM)
	wrong.AuthFile = userlist(t, entry(aqAuthUser, "not-its-password"))
	s2, _, logs2 := startLogged(t, wrong)
	if code, _ := pgCode(aqLogin(t, s2, "aq_scram", "scram-pw")); code != "F0000" {
		t.Errorf("auth_user refused: code %q; want F0000", code)
	}

	down := authQueryConfig(t, config.AuthSCRAM)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down.Databases[aqDatabase] = config.Database{Name: aqDatabase, Upstream: fmt.Sprintf("postgres://%s@127.0.0.1:%d/x", cluster.User, port)}
	s3, _, logs3 := startLogged(t, down)
	if code, _ := pgCode(aqLogin(t, s3, "aq_scram", "scram-pw")); code != "08006" {
		t.Errorf("server down: code %q; want 08006", code)
	}

	for _, l := range []*logLines{logs, logs2, logs3} {
		if len(l.with(t, "could not look up the user's secret")) == 0 {
			t.Errorf("no log line says the lookup failed:\n%s", l)
		}
		for _, secret := range []string{aqAuthPassword, "not-its-password", "scram-pw", verifier} {
			if strings.Contains(l.String(), secret) {
				t.Errorf("the log holds a secret (%.6s…)", secret)
			}
		}
	}
}

// storedSecret is what PostgreSQL keeps as user's password.
func storedSecret(t *testing.T, user string) string {
	t.Helper()
	var v string
	if err := direct(t).QueryRow(testutil.Context(t), "select rolpassword from pg_authid where rolname = $1", user).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// auth_query runs in the client's database unless auth_dbname names
// another route: here the function exists only in the test database.
func TestAuthQueryRunsInAuthDBName(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw"})
	cfg := authQueryConfig(t, config.AuthSCRAM)
	cfg.Databases["other"] = config.Database{Name: "other", Upstream: cluster.URL(cluster.User, cluster.Password, "postgres")}
	s := valvetest.Start(t, cfg)
	if code, _ := pgCode(loginTo(t, s.URL("aq_scram", "scram-pw", "other"))); code != "F0000" {
		t.Fatalf("without auth_dbname, in a database without the function: code %q; want F0000", code)
	}
	cfg.AuthDBName = aqDatabase
	s = valvetest.Start(t, cfg)
	if err := loginTo(t, s.URL("aq_scram", "scram-pw", "other")); err != nil {
		t.Fatalf("auth_dbname %s: %v", aqDatabase, err)
	}
}

// A route of several hosts looks users up on the first that answers: its
// first host down locks no one out.
func TestAuthQueryGoesOnToTheNextHostWhenTheFirstIsDown(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw"})
	cfg := authQueryConfig(t, config.AuthSCRAM)
	port, err := pgtest.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	route := cfg.Databases[aqDatabase]
	route.Hosts = []config.Address{{Host: "127.0.0.1", Port: port}, {Host: cluster.Host, Port: cluster.Port}}
	cfg.Databases[aqDatabase] = route
	s := valvetest.Start(t, cfg)
	if err := aqLogin(t, s, "aq_scram", "scram-pw"); err != nil {
		t.Fatalf("with the route's first host down: %v", err)
	}
	if code, _ := pgCode(aqLogin(t, s, "aq_scram", "wrong-pw")); code != "28P01" {
		t.Fatalf("a wrong password: code %q; want 28P01, as with one host", code)
	}
}
