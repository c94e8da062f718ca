package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// secureFlag turns the demo's TLS and SCRAM on (make run DEMO_FLAGS=--secure).
const secureFlag = "--secure"

// secure holds what the secure demo made, to print.
type secure struct {
	caFile, adminPassword string
}

// secureDemo turns on TLS with a certificate from a CA made for the demo,
// and SCRAM against an auth_file holding verifiers (no password) for the
// demo user, whose password is the upstream's, and for the console's admin,
// whose password is made up here. Its files go in dir.
func secureDemo(cfg *config.Config, dir, user, password string) (secure, error) {
	ca, err := tlsconf.NewAuthority("pgvalve demo")
	if err != nil {
		return secure{}, err
	}
	cert, key, err := ca.Server("pgvalve")
	if err != nil {
		return secure{}, err
	}
	adminPassword, err := randomWord()
	if err != nil {
		return secure{}, err
	}
	userlist := fmt.Sprintf("%q %q\n%q %q\n", user, verifier(password), cfg.AdminUsers[0], verifier(adminPassword))
	files := map[string][]byte{"ca.crt": ca.PEM, "server.crt": cert, "server.key": key, "userlist.txt": []byte(userlist)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return secure{}, err
		}
	}
	cfg.Auth, cfg.AuthFile = config.AuthSCRAM, filepath.Join(dir, "userlist.txt")
	cfg.ClientTLS.SSLMode = "require"
	cfg.ClientTLS.CertFile, cfg.ClientTLS.KeyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	return secure{caFile: filepath.Join(dir, "ca.crt"), adminPassword: adminPassword}, nil
}

func verifier(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return auth.NewVerifier(password, salt, 4096).String()
}

func randomWord() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
