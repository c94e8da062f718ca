// Package certs makes throwaway certificates for tests (tlsconf's
// Authority, crypto/x509): a CA, and server and client certificates it
// signs, written as PEM files in a directory that goes away with the test.
package certs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// CA is a certificate authority whose files lie in Dir.
type CA struct {
	Dir  string
	File string // the CA certificate, PEM
	a    *tlsconf.Authority
}

// Pair is a certificate and its key, as PEM files.
type Pair struct{ Cert, Key string }

// NewCA makes a CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	a, err := tlsconf.NewAuthority(name)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Dir: t.TempDir(), a: a}
	ca.File = write(t, ca.Dir, name+"-ca.crt", a.PEM)
	return ca
}

// Server signs a server certificate for localhost and 127.0.0.1.
func (ca *CA) Server(t testing.TB, name string) Pair {
	t.Helper()
	cert, key, err := ca.a.Server(name)
	return ca.pair(t, name, cert, key, err)
}

// ServerFor signs a server certificate valid only for hosts (names or IP
// addresses).
func (ca *CA) ServerFor(t testing.TB, name string, hosts ...string) Pair {
	t.Helper()
	cert, key, err := ca.a.ServerFor(name, hosts...)
	return ca.pair(t, name, cert, key, err)
}

// PEM returns the files of p, for whoever wants the bytes.
func (p Pair) PEM(t testing.TB) (cert, key []byte) {
	t.Helper()
	cert, err := os.ReadFile(p.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if key, err = os.ReadFile(p.Key); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// Client signs a client certificate whose common name is user.
func (ca *CA) Client(t testing.TB, user string) Pair {
	t.Helper()
	cert, key, err := ca.a.Client(user)
	return ca.pair(t, user, cert, key, err)
}

func (ca *CA) pair(t testing.TB, name string, cert, key []byte, err error) Pair {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return Pair{Cert: write(t, ca.Dir, name+".crt", cert), Key: write(t, ca.Dir, name+".key", key)}
}

func write(t testing.TB, dir, name string, pem []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
