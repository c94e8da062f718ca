// Package auth authenticates clients. In trust mode everyone is let in; in
// passthrough mode pgvalve asks for a cleartext password and proves it by
// logging in to the upstream with it (cleartext: for local use until
// pgvalve speaks TLS to clients).
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// maxPassword bounds a PasswordMessage; PostgreSQL allows 1000 bytes for
// the cleartext password packet (auth.c, recv_password_packet).
const maxPassword = 1000

// ErrNoPassword is returned when the client answers with an empty password.
var ErrNoPassword = errors.New("auth: empty password")

// RequestPassword sends AuthenticationCleartextPassword and reads the
// client's PasswordMessage.
func RequestPassword(w io.Writer, rd *wire.Reader) (string, error) {
	if _, err := w.Write(wire.Append(nil, &pgproto3.AuthenticationCleartextPassword{})); err != nil {
		return "", err
	}
	typ, body, err := rd.ReadMessage()
	if err != nil {
		return "", err
	}
	if typ != 'p' {
		return "", fmt.Errorf("auth: expected a password message, got %q", typ)
	}
	if len(body) > maxPassword+1 {
		return "", fmt.Errorf("auth: password message of %d bytes is too long", len(body))
	}
	if len(body) == 0 || body[len(body)-1] != 0 {
		return "", errors.New("auth: malformed password message")
	}
	pw := string(body[:len(body)-1])
	if pw == "" {
		return "", ErrNoPassword
	}
	return pw, nil
}

// Passwords remembers, per pool, the password the upstream last accepted:
// passthrough clients presenting the same one need no server login of their
// own, and the pool dials with it. Only digests are compared.
type Passwords struct {
	mu struct {
		sync.Mutex
		m map[string]string
	}
}

// NewPasswords returns an empty store.
func NewPasswords() *Passwords {
	p := &Passwords{}
	p.mu.m = make(map[string]string)
	return p
}

// Get returns the accepted password for key.
func (p *Passwords) Get(key string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.mu.m[key]
	return pw, ok
}

// Matches reports, in constant time, whether pw is the accepted password.
func (p *Passwords) Matches(key, pw string) bool {
	known, ok := p.Get(key)
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(known)), sha256.Sum256([]byte(pw))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Accept records pw as the password the upstream accepted for key.
func (p *Passwords) Accept(key, pw string) {
	p.mu.Lock()
	p.mu.m[key] = pw
	p.mu.Unlock()
}

// Forget drops key's password if it is still pw (the upstream refused it).
func (p *Passwords) Forget(key, pw string) {
	p.mu.Lock()
	if p.mu.m[key] == pw {
		delete(p.mu.m, key)
	}
	p.mu.Unlock()
}
