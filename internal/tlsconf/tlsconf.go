// Package tlsconf turns client_tls_* settings into the crypto/tls
// configuration each client's handshake uses (Server), and server_tls_*
// into the one pgvalve's logins to PostgreSQL use (Upstream). A reload
// (SIGHUP, RELOAD) builds new ones, so connections already made are not
// touched.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pgvalve/pgvalve/internal/config"
)

// ALPN is the protocol name PostgreSQL 17's direct TLS negotiates.
const ALPN = "postgresql"

// Server is the TLS pgvalve offers clients, loaded once and never changed:
// a reload builds a new one and its owner swaps it in, so handshakes under
// way keep the one they started with.
type Server struct {
	settings config.TLS
	cert     tls.Certificate
	leaf     *x509.Certificate
	cas      *x509.CertPool // nil without client_tls_ca_file
	min, max uint16
	ciphers  []uint16
}

// NewServer loads t's files; nil, nil when t turns TLS off.
func NewServer(t config.TLS) (*Server, error) {
	if !t.On() {
		return nil, nil
	}
	s := &Server{settings: t}
	var err error
	if s.cert, err = tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		return nil, fmt.Errorf("client_tls_cert_file/client_tls_key_file: %w", err)
	}
	if s.leaf, err = x509.ParseCertificate(s.cert.Certificate[0]); err != nil {
		return nil, fmt.Errorf("client_tls_cert_file: %w", err)
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client_tls_ca_file: %w", err)
		}
		s.cas = x509.NewCertPool()
		if !s.cas.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_tls_ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if s.min, s.max, err = Versions(t.Protocols); err != nil {
		return nil, fmt.Errorf("client_tls_protocols: %w", err)
	}
	if s.ciphers, err = Ciphers(t.Ciphers); err != nil {
		return nil, fmt.Errorf("client_tls_ciphers: %w", err)
	}
	return s, nil
}

// Handshake is one client's TLS configuration and the certificate it
// presents, for SCRAM channel binding (tls-server-end-point).
type Handshake struct {
	Config *tls.Config
	Leaf   *x509.Certificate
}

// Settings returns the settings in force.
func (s *Server) Settings() config.TLS { return s.settings }

// ForClient returns the configuration of the next client's handshake.
func (s *Server) ForClient() Handshake {
	c := &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   s.min, MaxVersion: s.max,
		CipherSuites: s.ciphers,
		NextProtos:   []string{ALPN},
		ClientCAs:    s.cas,
	}
	switch {
	case s.settings.VerifyPeer():
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case s.cas != nil:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return Handshake{Config: c, Leaf: s.leaf}
}

// Versions reads client_tls_protocols: "secure" (TLS 1.2 and 1.3), "all"
// or "legacy" (1.0 to 1.3), or a comma-separated list of tlsv1.0 to
// tlsv1.3, PgBouncer's names; it returns the lowest and highest.
func Versions(s string) (min, max uint16, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "secure", "default":
		return tls.VersionTLS12, tls.VersionTLS13, nil
	case "all", "legacy":
		return tls.VersionTLS10, tls.VersionTLS13, nil
	}
	names := map[string]uint16{"tlsv1.0": tls.VersionTLS10, "tlsv1.1": tls.VersionTLS11, "tlsv1.2": tls.VersionTLS12, "tlsv1.3": tls.VersionTLS13}
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ':' }) {
		v, ok := names[strings.ToLower(p)]
		if !ok {
			return 0, 0, fmt.Errorf("%q is not one of secure, all, legacy, tlsv1.0 … tlsv1.3", p)
		}
		if min == 0 || v < min {
			min = v
		}
		max = maxOf(max, v)
	}
	if min == 0 {
		return 0, 0, errors.New("no protocol named")
	}
	return min, max, nil
}

func maxOf(a, b uint16) uint16 {
	if a > b {
		return a
	}
	return b
}

// Ciphers reads client_tls_ciphers: PgBouncer's keywords (default, secure,
// normal, fast, all) leave the choice to Go, whose defaults are secure;
// otherwise a list of IANA cipher suite names, separated by ':' or ','.
// TLS 1.3's suites are not configurable in Go and always on.
func Ciphers(s string) ([]uint16, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "default", "secure", "normal", "fast", "all", "high":
		return nil, nil
	}
	byName := map[string]uint16{}
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[c.Name] = c.ID
	}
	var out []uint16
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("unknown cipher suite %q (give IANA names such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)", name)
		}
		out = append(out, id)
	}
	return out, nil
}
