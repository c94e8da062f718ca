package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/pgvalve/pgvalve/internal/config"
)

// Upstream is the TLS pgvalve speaks to PostgreSQL servers (server_tls_*),
// loaded once and never changed: a reload builds a new one and the app
// swaps it in, so a dial under way keeps the one it started with.
type Upstream struct {
	settings config.TLS
	roots    *x509.CertPool    // nil without server_tls_ca_file
	certs    []tls.Certificate // pgvalve's own certificate, if any
	min, max uint16
	ciphers  []uint16
	// digest covers the settings and the bytes of every file read, so a
	// reload can tell whether anything a server would see changed.
	digest [sha256.Size]byte
}

// NewUpstream loads t's files. Unlike NewServer it never returns nil:
// disable is a choice pgvalve makes for every route whose URL does not
// name its own sslmode.
func NewUpstream(t config.TLS) (*Upstream, error) {
	u := &Upstream{settings: t}
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", t)
	read := func(key, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		h.Write(b)
		return b, nil
	}
	var err error
	switch t.CAFile {
	case "":
	case config.SystemRoots:
		if u.roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("server_tls_ca_file system: %w", err)
		}
	default:
		pem, err := read("server_tls_ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		u.roots = x509.NewCertPool()
		if !u.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server_tls_ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := read("server_tls_cert_file", t.CertFile)
		if err != nil {
			return nil, err
		}
		key, err := read("server_tls_key_file", t.KeyFile)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("server_tls_cert_file/server_tls_key_file: %w", err)
		}
		u.certs = []tls.Certificate{pair}
	}
	if u.min, u.max, err = Versions(t.Protocols); err != nil {
		return nil, fmt.Errorf("server_tls_protocols: %w", err)
	}
	if u.ciphers, err = Ciphers(t.Ciphers); err != nil {
		return nil, fmt.Errorf("server_tls_ciphers: %w", err)
	}
	h.Sum(u.digest[:0])
	return u, nil
}

// Settings returns the settings in force.
func (u *Upstream) Settings() config.TLS { return u.settings }

// Same reports whether u and o make the same connections: the same
// settings and the same bytes in every file.
func (u *Upstream) Same(o *Upstream) bool {
	return u != nil && o != nil && u.digest == o.digest
}

// Attempts returns how to try reaching host, in order, as libpq's sslmode
// does: nil is plaintext. disable: plaintext only; allow: plaintext, then
// TLS; prefer: TLS, then plaintext; require and stricter: TLS only. As in
// PgBouncer, only verify-ca and verify-full check the server's certificate
// (libpq's require also checks it when a root certificate file exists;
// PgBouncer's does not): verify-ca its chain up to server_tls_ca_file,
// verify-full its host name too. Each call returns new configurations,
// host being part of them.
func (u *Upstream) Attempts(host string) []*tls.Config {
	if !u.settings.On() {
		return []*tls.Config{nil}
	}
	c := &tls.Config{
		// SNI: Go leaves it out for an IP address, as RFC 6066 asks.
		ServerName:   host,
		Certificates: u.certs,
		MinVersion:   u.min, MaxVersion: u.max,
		CipherSuites: u.ciphers,
		// As libpq 17; PostgreSQL 17 checks it when given, older servers
		// ignore it.
		NextProtos: []string{ALPN},
	}
	switch u.settings.SSLMode {
	case "allow":
		c.InsecureSkipVerify = true
		return []*tls.Config{nil, c}
	case "prefer":
		c.InsecureSkipVerify = true
		return []*tls.Config{c, nil}
	case "require":
		c.InsecureSkipVerify = true
	case "verify-ca":
		// crypto/tls checks the host name whenever it checks the chain;
		// libpq's verify-ca checks only the chain, so pgvalve does that
		// itself.
		c.InsecureSkipVerify = true
		c.VerifyConnection = u.verifyChain
	case "verify-full":
		c.RootCAs = u.roots
	}
	return []*tls.Config{c}
}

// verifyChain checks the server's certificate chain up to the roots,
// whatever names it holds (verify-ca).
func (u *Upstream) verifyChain(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	}
	opts := x509.VerifyOptions{Roots: u.roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// Describe tells a connection's TLS as PgBouncer's SHOW SERVERS and SHOW
// CLIENTS do: "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519".
func Describe(cs tls.ConnectionState) string {
	version := strings.Replace(tls.VersionName(cs.Version), "TLS ", "TLSv", 1)
	s := version + "/" + tls.CipherSuiteName(cs.CipherSuite)
	if cs.CurveID != 0 {
		s += "/ECDH=" + curveName(cs.CurveID)
	}
	return s
}

// curveName is OpenSSL's short name of a key exchange group, as PgBouncer
// shows it, where Go's differs.
func curveName(id tls.CurveID) string {
	switch id {
	case tls.CurveP256:
		return "prime256v1"
	case tls.CurveP384:
		return "secp384r1"
	case tls.CurveP521:
		return "secp521r1"
	}
	return id.String()
}
