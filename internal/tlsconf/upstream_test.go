package tlsconf

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
)

// pki is a CA, a server certificate it signed for localhost only, and a
// second CA that signed nothing the server shows.
type pki struct {
	server        tls.Certificate
	caFile, other string
	clientCert    string
	clientKey     string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, err := NewAuthority("right")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority("wrong")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.ServerFor("db", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cc, ck, err := ca.Client("pgvalve")
	if err != nil {
		t.Fatal(err)
	}
	return pki{server: srv, caFile: write("ca.crt", ca.PEM), other: write("other.crt", other.PEM),
		clientCert: write("client.crt", cc), clientKey: write("client.key", ck)}
}

// handshake runs c against a server showing p's certificate, over
// loopback TCP; "" means it succeeded.
func (p pki) handshake(t *testing.T, c *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		_ = tls.Server(s, &tls.Config{Certificates: []tls.Certificate{p.server}}).Handshake()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	err = tls.Client(conn, c).Handshake()
	conn.Close()
	<-done
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestUpstreamAttemptsFollowSSLModeAndCheckWhatEachModePromises(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		mode, ca, host string
		plainFirst     bool   // the first attempt is plaintext
		attempts       int    // how many
		fails          string // "" or part of the handshake's error
	}{
		{mode: "disable", host: "localhost", plainFirst: true, attempts: 1},
		{mode: "allow", host: "127.0.0.1", plainFirst: true, attempts: 2},
		{mode: "prefer", ca: p.other, host: "127.0.0.1", attempts: 2}, // checks nothing
		{mode: "require", ca: p.other, host: "127.0.0.1", attempts: 1},
		{mode: "verify-ca", ca: p.caFile, host: "127.0.0.1", attempts: 1}, // a name it does not hold is fine
		{mode: "verify-ca", ca: p.other, host: "localhost", attempts: 1, fails: "unknown authority"},
		{mode: "verify-full", ca: p.caFile, host: "localhost", attempts: 1},
		{mode: "verify-full", ca: p.caFile, host: "127.0.0.1", attempts: 1, fails: "127.0.0.1"},
		{mode: "verify-full", ca: p.other, host: "localhost", attempts: 1, fails: "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+filepath.Base(tt.ca)+"/"+tt.host, func(t *testing.T) {
			u, err := NewUpstream(config.TLS{SSLMode: tt.mode, CAFile: tt.ca, Protocols: "secure", Ciphers: "default"})
			if err != nil {
				t.Fatal(err)
			}
			got := u.Attempts(tt.host)
			if len(got) != tt.attempts || (got[0] == nil) != tt.plainFirst {
				t.Fatalf("attempts %v, want %d with plaintext first %v", got, tt.attempts, tt.plainFirst)
			}
			var c *tls.Config
			for _, a := range got {
				if a != nil {
					c = a
				}
			}
			if c == nil {
				return
			}
			if c.ServerName != tt.host || c.NextProtos[0] != ALPN {
				t.Errorf("ServerName %q NextProtos %v, want %q and ALPN", c.ServerName, c.NextProtos, tt.host)
			}
			msg := p.handshake(t, c)
			if (msg == "") != (tt.fails == "") || !strings.Contains(msg, tt.fails) {
				t.Fatalf("handshake: %q, want failure containing %q", msg, tt.fails)
			}
		})
	}
}

func TestUpstreamPresentsItsClientCertificateAndTellsReloadsApart(t *testing.T) {
	p := newPKI(t)
	set := config.TLS{SSLMode: "require", CertFile: p.clientCert, KeyFile: p.clientKey, Protocols: "secure", Ciphers: "default"}
	u, err := NewUpstream(set)
	if err != nil {
		t.Fatal(err)
	}
	if c := u.Attempts("db")[0]; len(c.Certificates) != 1 {
		t.Fatalf("certificates %d, want pgvalve's one", len(c.Certificates))
	}
	again, err := NewUpstream(set)
	if err != nil || !u.Same(again) {
		t.Fatalf("the same settings and files: Same false (%v)", err)
	}
	if err := os.WriteFile(p.clientCert, append(mustRead(t, p.clientCert), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := NewUpstream(set)
	if err != nil || u.Same(changed) {
		t.Fatalf("a rewritten certificate file: Same true (%v)", err)
	}
	set.CertFile = ""
	if _, err := NewUpstream(set); err == nil || !strings.Contains(err.Error(), "server_tls_cert_file") {
		t.Fatalf("a key without its certificate: %v", err)
	}
}

func TestUpstreamFilesAndSettingsAreCheckedWhenLoaded(t *testing.T) {
	for name, set := range map[string]config.TLS{
		"server_tls_ca_file":   {SSLMode: "verify-ca", CAFile: "/nonexistent/ca.crt"},
		"server_tls_protocols": {SSLMode: "require", Protocols: "sslv3"},
		"server_tls_ciphers":   {SSLMode: "require", Ciphers: "HIGH:!aNULL"},
	} {
		if _, err := NewUpstream(set); err == nil || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming it", name, err)
		}
	}
}

func TestDescribeWritesPgBouncersTLSColumn(t *testing.T) {
	got := Describe(tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_256_GCM_SHA384, CurveID: tls.X25519})
	if got != "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519" {
		t.Errorf("got %q", got)
	}
	got = Describe(tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CurveID: tls.CurveP256})
	if got != "TLSv1.2/TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256/ECDH=prime256v1" {
		t.Errorf("got %q", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
