package app_test

import (
	"crypto/tls"
	"crypto/x509"
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
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// tlsValve starts pgvalve with a certificate from a fresh CA, TLS in
// sslmode, and SCRAM against PostgreSQL's own verifier of the test user.
func tlsValve(t *testing.T, sslmode string, edit ...func(*config.Config)) (*valvetest.Server, *certs.CA, config.Config) {
	t.Helper()
	ca := certs.NewCA(t, "pgvalve-test")
	srv := ca.Server(t, "pgvalve")
	cfg := txnConfig(2)
	cfg.Auth, cfg.AuthFile = config.AuthSCRAM, userlist(t, entry(cluster.User, storedVerifier(t)))
	cfg.ClientTLS = config.TLS{SSLMode: sslmode, KeyFile: srv.Key, CertFile: srv.Cert, CAFile: ca.File, Protocols: "secure", Ciphers: "default"}
	for _, e := range edit {
		e(&cfg)
	}
	return valvetest.Start(t, cfg), ca, cfg
}

// dsn is a libpq connection string to pgvalve as the test user.
func dsn(s *valvetest.Server, extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s %s", s.Port(), cluster.User, cluster.Password, pgtest.TestDatabase, extra)
}

func connectDSN(t *testing.T, conn string) error {
	t.Helper()
	c, err := pgx.Connect(testutil.Context(t), conn)
	if err != nil {
		return err
	}
	defer c.Close(testutil.Context(t))
	var on bool
	return c.QueryRow(testutil.Context(t), "select true").Scan(&on)
}

// pgx logs in over TLS, checking pgvalve's certificate (verify-full), with
// SCRAM channel binding required, and with PostgreSQL 17's direct TLS.
func TestPgxLogsInOverTLSWithChannelBinding(t *testing.T) {
	s, ca, _ := tlsValve(t, "require")
	for _, extra := range []string{
		"sslmode=require",
		"sslmode=verify-full sslrootcert=" + ca.File,
		"sslmode=verify-full sslrootcert=" + ca.File + " channel_binding=require",
		"sslmode=require sslnegotiation=direct channel_binding=require",
	} {
		if err := connectDSN(t, dsn(s, extra)); err != nil {
			t.Errorf("%s: %v", extra, err)
		}
	}
}

// psql (libpq) logs in with sslmode=require and channel_binding=require.
func TestPsqlLogsInOverTLSWithChannelBinding(t *testing.T) {
	s, _, _ := tlsValve(t, "require")
	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "psql"), "-X", "-At", "-c", "select 'over tls'",
		dsn(s, "sslmode=require channel_binding=require")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "over tls" {
		t.Fatalf("psql: %v\n%s", err, out)
	}
}

// client_tls_sslmode=require refuses a client without TLS with
// PostgreSQL's own words; prefer lets it in.
func TestRequireRefusesAClientWithoutTLS(t *testing.T) {
	s, _, _ := tlsValve(t, "require")
	err := connectDSN(t, dsn(s, "sslmode=disable"))
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok || pe.Code != "28000" || !strings.Contains(pe.Message, "no encryption") {
		t.Fatalf("a client without TLS under require: %v; want 28000 … no encryption", err)
	}
	prefer, _, _ := tlsValve(t, "prefer")
	if err := connectDSN(t, dsn(prefer, "sslmode=disable")); err != nil {
		t.Fatalf("a client without TLS under prefer: %v", err)
	}
}

// Bytes sent in cleartext after the SSLRequest, before pgvalve's answer,
// are refused, never read as part of the encrypted stream.
func TestCleartextPipelinedAfterSSLRequestIsRefused(t *testing.T) {
	s, _, _ := tlsValve(t, "require")
	c := dialRaw(t, s)
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	start, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: testUserParams()}).Encode(nil)
	c.write(append(ssl, start...))
	time.Sleep(50 * time.Millisecond) // both have arrived before pgvalve looks
	c.expectFatalThenEOF("08P01")
}

// verify-ca asks every client for a certificate the CA signed: a client
// with one logs in, one without fails the handshake.
func TestVerifyCARequiresAClientCertificate(t *testing.T) {
	s, ca, _ := tlsValve(t, "verify-ca")
	client := ca.Client(t, cluster.User)
	with := dsn(s, fmt.Sprintf("sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s", ca.File, client.Cert, client.Key))
	if err := connectDSN(t, with); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := connectDSN(t, dsn(s, "sslmode=verify-full sslrootcert="+ca.File)); err == nil {
		t.Fatal("a client without a certificate logged in under verify-ca")
	}
}

// auth_type plain over TLS logs in with the password itself.
func TestPlainPasswordsWorkOverTLS(t *testing.T) {
	s, _, _ := tlsValve(t, "require", func(c *config.Config) { c.Auth = config.AuthPlain })
	if err := connectDSN(t, dsn(s, "sslmode=require")); err != nil {
		t.Fatalf("plain over TLS: %v", err)
	}
}

// A reload that names a new certificate serves it to the next client,
// and a client connected before goes on.
func TestReloadServesANewCertificateWithoutDroppingClients(t *testing.T) {
	s, ca, cfg := tlsValve(t, "require")
	before, err := pgx.Connect(testutil.Context(t), dsn(s, "sslmode=verify-full sslrootcert="+ca.File))
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close(testutil.Context(t))
	ca2 := certs.NewCA(t, "pgvalve-test-2")
	srv2 := ca2.Server(t, "pgvalve2")
	cfg.ClientTLS.CertFile, cfg.ClientTLS.KeyFile = srv2.Cert, srv2.Key
	s.App.Reload(cfg)
	if err := connectDSN(t, dsn(s, "sslmode=verify-full sslrootcert="+ca2.File)); err != nil {
		t.Fatalf("a new client verifying the new certificate: %v", err)
	}
	if err := connectDSN(t, dsn(s, "sslmode=verify-full sslrootcert="+ca.File)); err == nil {
		t.Fatal("a new client still got the old certificate")
	}
	testutil.MustExec(t, before, "select 1")
}

// A direct TLS client must negotiate ALPN postgresql, as PostgreSQL asks.
func TestDirectTLSWithoutALPNIsRefused(t *testing.T) {
	s, ca, _ := tlsValve(t, "require")
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.File)
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", s.Addr.String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return // refused in the handshake: as good
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: testUserParams()}).Encode(nil)
	_, _ = conn.Write(start)
	var b [1]byte
	if _, err := conn.Read(b[:]); err == nil {
		t.Fatalf("a direct TLS client without ALPN got an answer (%q)", b[0])
	}
}

// auth_type cert: the verified client certificate's common name is the
// user; a certificate naming someone else is refused with PostgreSQL's
// message.
func TestCertAuthLetsInTheUserTheCertificateNames(t *testing.T) {
	s, ca, _ := tlsValve(t, "verify-full", func(c *config.Config) { c.Auth = config.AuthCert })
	mine, theirs := ca.Client(t, cluster.User), ca.Client(t, "somebody-else")
	with := func(p certs.Pair) string {
		return dsn(s, fmt.Sprintf("sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s", ca.File, p.Cert, p.Key))
	}
	if err := connectDSN(t, with(mine)); err != nil {
		t.Fatalf("with the user's own certificate: %v", err)
	}
	err := connectDSN(t, with(theirs))
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok || pe.Code != "28000" || pe.Message != fmt.Sprintf("certificate authentication failed for user %q", cluster.User) {
		t.Fatalf("with another user's certificate: %v; want 28000 certificate authentication failed", err)
	}
}
