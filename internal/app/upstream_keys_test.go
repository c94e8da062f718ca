package app_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// noUpstreamPassword takes the password out of the upstream URL and out of
// pgvalve's environment: the server login must come from the client's.
func noUpstreamPassword(t *testing.T) func(*config.Config) {
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", "/nonexistent")
	return func(cfg *config.Config) {
		u, err := url.Parse(cfg.Upstream)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.User(u.User.Username())
		cfg.Upstream = u.String()
	}
}

// With PostgreSQL's own verifier in auth_file and no password anywhere in
// pgvalve's configuration, the server login uses the keys the client's
// SCRAM proof gave away: without TLS, with channel binding on TLS, and
// through psql.
func TestServerLoginsUseTheKeysFromTheClientsSCRAMProof(t *testing.T) {
	s, ca, _ := tlsValve(t, "prefer", noUpstreamPassword(t))
	for _, extra := range []string{
		"sslmode=disable",
		"sslmode=verify-full sslrootcert=" + ca.File + " channel_binding=require",
	} {
		if err := connectDSN(t, dsn(s, extra)); err != nil {
			t.Errorf("%s: %v", extra, err)
		}
	}
}

// A plain password over TLS checked against a verifier: pgvalve keeps
// the keys it derives, not the password, and logs in with them.
func TestServerLoginsUseKeysDerivedFromACleartextPassword(t *testing.T) {
	s, _, _ := tlsValve(t, "require", noUpstreamPassword(t), func(cfg *config.Config) { cfg.Auth = config.AuthPlain })
	if err := connectDSN(t, dsn(s, "sslmode=require")); err != nil {
		t.Fatal(err)
	}
}

// An md5 hash in auth_file logs in to a server storing the same hash.
func TestServerLoginsUseTheMD5HashFromAuthFile(t *testing.T) {
	ctx := testutil.Context(t)
	su := direct(t)
	name := "md5_hash_user" // lower case: an unquoted role name
	testutil.MustExec(t, su, "set password_encryption = 'md5'")
	testutil.MustExec(t, su, "drop role if exists "+name)
	testutil.MustExec(t, su, "create role "+name+" login password 'tr0ub4dor'")
	testutil.MustExec(t, su, "grant connect on database "+cluster.Database+" to "+name)
	t.Cleanup(func() { _, _ = direct(t).Exec(testutil.Context(t), "drop role if exists "+name) })
	var stored string
	if err := su.QueryRow(ctx, "select rolpassword from pg_authid where rolname = $1", name).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	edit := noUpstreamPassword(t)
	cfg := txnConfig(2)
	edit(&cfg)
	cfg.Auth, cfg.AuthFile = config.AuthMD5, userlist(t, entry(name, stored))
	s := valvetest.Start(t, cfg)
	if err := login(t, s, name, "tr0ub4dor"); err != nil {
		t.Fatal(err)
	}
}

// A verifier in auth_file made apart from the server's (same password,
// another salt) lets the client in, and then the server login cannot
// work: the client is told why, with 28000, instead of a bare 28P01.
func TestAnotherVerifierOnTheServerIsExplainedToTheClient(t *testing.T) {
	own := auth.NewVerifier(cluster.Password, []byte("another salt 123"), 4096).String()
	s, _, _ := tlsValve(t, "prefer", noUpstreamPassword(t), func(cfg *config.Config) {
		cfg.AuthFile = userlist(t, entry(cluster.User, own))
	})
	err := connectDSN(t, dsn(s, "sslmode=disable"))
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok || pe.Code != "28000" || !strings.Contains(pe.Message, "same verifier") {
		t.Fatalf("login with a verifier the server does not hold: %v; want 28000 asking for the same verifier", err)
	}
}

// A user found through auth_query logs in to PostgreSQL as itself, with
// the keys of its SCRAM proof or its md5 hash: no password for it is
// configured anywhere.
func TestAuthQueryUsersLogInToTheServerAsThemselves(t *testing.T) {
	authQueryCluster(t, map[string]string{"aq_scram": "scram-pw", "aq_md5": "md5-pw"})
	for user, mode := range map[string]config.AuthMode{"aq_scram": config.AuthSCRAM, "aq_md5": config.AuthMD5} {
		t.Run(user, func(t *testing.T) {
			cfg := authQueryConfig(t, mode)
			noUpstreamPassword(t)(&cfg)
			s := valvetest.Start(t, cfg)
			c, err := pgconn.Connect(testutil.Context(t), s.URL(user, map[string]string{"aq_scram": "scram-pw", "aq_md5": "md5-pw"}[user], cluster.Database))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(testutil.Context(t))
			res, err := c.Exec(testutil.Context(t), "select current_user").ReadAll()
			if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != user {
				t.Fatalf("current_user through pgvalve: %v %v, want %s", res, err, user)
			}
		})
	}
}

// Over TLS to the server, the keys log in with SCRAM-SHA-256-PLUS: the
// upstream URL asks for channel_binding=require, which fails unless the
// server's certificate is bound into the proof pgvalve makes.
func TestServerLoginsWithKeysBindTheServersTLSChannel(t *testing.T) {
	ca := certs.NewCA(t, "cluster")
	c := tlsCluster(t, ca)
	var verifier string
	su := testutil.Connect(t, c.SuperuserURL(c.Database))
	if err := su.QueryRow(testutil.Context(t), "select rolpassword from pg_authid where rolname = $1", c.User).Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", "/nonexistent")
	cfg := sessionConfig(2)
	cfg.Upstream = upstreamURL(c, "localhost", c.User, "") + "?channel_binding=require"
	cfg.ServerTLS = config.TLS{SSLMode: "verify-full", CAFile: ca.File, Protocols: "secure", Ciphers: "default"}
	cfg.Auth, cfg.AuthFile = config.AuthSCRAM, userlist(t, entry(c.User, verifier))
	s := valvetest.Start(t, cfg)
	on, _, err := sslThrough(t, s, c.User, c.Password, c.Database)
	if err != nil || !on {
		t.Fatalf("pg_stat_ssl.ssl = %v, %v; want a login over TLS with the client's keys", on, err)
	}
}
