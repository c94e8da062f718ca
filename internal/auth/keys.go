package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"

	"github.com/xdg-go/stringprep"

	"github.com/pgvalve/pgvalve/internal/backend"
)

// recoverKeys takes ClientKey out of a client's valid SCRAM proof, so that
// pgvalve can log in to a server holding the same verifier without the
// password (RFC 5802: ClientProof = ClientKey XOR HMAC(StoredKey,
// AuthMessage)). clientFirst and clientFinal are the client's messages,
// serverFirst pgvalve's answer; ok is false for messages it cannot read.
func recoverKeys(v Verifier, clientFirst, serverFirst, clientFinal string) (*backend.SCRAMKeys, bool) {
	// client-first-message = gs2-header client-first-message-bare, and the
	// GS2 header is two comma-ended fields (e.g. "n,,").
	i := strings.IndexByte(clientFirst, ',')
	if i < 0 {
		return nil, false
	}
	j := strings.IndexByte(clientFirst[i+1:], ',')
	p := strings.LastIndex(clientFinal, ",p=")
	if j < 0 || p < 0 {
		return nil, false
	}
	bare := clientFirst[i+j+2:]
	proof, err := base64.StdEncoding.DecodeString(clientFinal[p+3:])
	if err != nil || len(proof) != sha256.Size {
		return nil, false
	}
	authMsg := bare + "," + serverFirst + "," + clientFinal[:p]
	key := mac(v.StoredKey, authMsg)
	for k := range key {
		key[k] ^= proof[k]
	}
	if stored := sha256.Sum256(key); !bytes.Equal(stored[:], v.StoredKey) {
		return nil, false
	}
	return &backend.SCRAMKeys{Salt: v.Salt, Iterations: v.Iterations, ClientKey: key, ServerKey: v.ServerKey}, true
}

// keysOf derives the SCRAM keys of a password already checked against v
// (a client that logged in with a cleartext password): pgvalve keeps the
// keys, not the password.
func keysOf(password string, v Verifier) *backend.SCRAMKeys {
	if prepped, err := stringprep.SASLprep.Prepare(password); err == nil {
		password = prepped // as PostgreSQL, which uses the password as it is when SASLprep refuses it
	}
	salted, err := pbkdf2.Key(sha256.New, password, v.Salt, v.Iterations, sha256.Size)
	if err != nil {
		return nil
	}
	return &backend.SCRAMKeys{Salt: v.Salt, Iterations: v.Iterations, ClientKey: mac(salted, "Client Key"), ServerKey: v.ServerKey}
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Credentials remembers, per user, the last credential a successful client
// login taught pgvalve (Exchange.Learned), for the pools' server logins.
// Only users who proved themselves are kept, so its size is bounded by
// the real users.
type Credentials struct {
	mu sync.Mutex
	m  map[string]backend.Credential
}

// NewCredentials returns an empty store.
func NewCredentials() *Credentials { return &Credentials{m: make(map[string]backend.Credential)} }

// Put records user's credential.
func (c *Credentials) Put(user string, cred backend.Credential) {
	c.mu.Lock()
	c.m[user] = cred
	c.mu.Unlock()
}

// Get returns user's credential, if a client taught one.
func (c *Credentials) Get(user string) (backend.Credential, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cred, ok := c.m[user]
	return cred, ok
}
