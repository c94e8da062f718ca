// Package auth authenticates clients: the server side of SCRAM-SHA-256,
// md5 and cleartext exchanges against secrets from auth_file (userlist.go,
// exchange.go), and, for passthrough, the cleartext password request and
// the store of passwords the upstream accepted (this file).
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"sync"
	"time"

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
	if _, big := errors.AsType[*wire.ErrTooLarge](err); big {
		return "", protocolErr("password message too long")
	}
	if err != nil {
		return "", err
	}
	if typ != 'p' {
		return "", protocolErr("expected a password message, got message type %q", typ)
	}
	if len(body) > maxPassword+1 {
		return "", protocolErr("password message of %d bytes is too long", len(body))
	}
	if len(body) == 0 || body[len(body)-1] != 0 {
		return "", protocolErr("invalid password packet")
	}
	pw := string(body[:len(body)-1])
	if pw == "" {
		return "", ErrNoPassword
	}
	return pw, nil
}

// Passwords remembers, per pool, the password the upstream last accepted
// and when: the pool dials with it, and a passthrough client presenting the
// same one within Fresh of that check needs no server login of its own.
// Past Fresh the server is asked again, so a changed or revoked password
// stops working within that time.
type Passwords struct {
	// Fresh is how long an accepted password is trusted without asking
	// the server again.
	Fresh time.Duration
	mu    struct {
		sync.Mutex
		m map[string]accepted
	}
}

type accepted struct {
	pw string
	at time.Time
}

// NewPasswords returns an empty store trusting checks for fresh.
func NewPasswords(fresh time.Duration) *Passwords {
	p := &Passwords{Fresh: fresh}
	p.mu.m = make(map[string]accepted)
	return p
}

// Get returns the accepted password for key, for dialling.
func (p *Passwords) Get(key string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.mu.m[key]
	return a.pw, ok
}

// Matches reports, in constant time, whether pw is the accepted password
// and was checked with the server less than Fresh ago.
func (p *Passwords) Matches(key, pw string, now time.Time) bool {
	p.mu.Lock()
	a, ok := p.mu.m[key]
	p.mu.Unlock()
	if !ok || now.Sub(a.at) >= p.Fresh {
		return false
	}
	x, y := sha256.Sum256([]byte(a.pw)), sha256.Sum256([]byte(pw))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// Accept records pw as the password the upstream accepted for key at now.
func (p *Passwords) Accept(key, pw string, now time.Time) {
	p.mu.Lock()
	p.mu.m[key] = accepted{pw: pw, at: now}
	p.mu.Unlock()
}

// Forget drops key's password if it is still pw (the upstream refused it).
func (p *Passwords) Forget(key, pw string) {
	p.mu.Lock()
	if p.mu.m[key].pw == pw {
		delete(p.mu.m, key)
	}
	p.mu.Unlock()
}
