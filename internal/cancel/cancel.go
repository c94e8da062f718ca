// Package cancel maps the cancel keys pgvalve gives its clients to whatever
// each client runs on a server right now. Clients never see server keys, so
// a cancel can only ever reach the server its own client holds at that
// moment.
package cancel

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Target cancels whatever its client is running now; it does nothing when
// the client holds no server.
type Target interface {
	CancelCurrent(ctx context.Context) error
}

// keyLen is a protocol 3.0 key: a 4-byte process id and a 4-byte secret.
const keyLen = 8

type key [keyLen]byte

// Key is the BackendKeyData a client receives.
type Key struct {
	PID    uint32
	Secret []byte
}

// Registry holds the live keys.
type Registry struct {
	mu struct {
		sync.Mutex
		m map[key]Target
	}
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.mu.m = make(map[key]Target)
	return r
}

// Register issues a fresh random key for t. The returned func removes it.
func (r *Registry) Register(t Target) (Key, func()) {
	var k key
	r.mu.Lock()
	for {
		_, _ = rand.Read(k[:])
		// A zero pid looks unset to some clients.
		if _, taken := r.mu.m[k]; !taken && binary.BigEndian.Uint32(k[:4]) != 0 {
			break
		}
	}
	r.mu.m[k] = t
	r.mu.Unlock()
	return Key{PID: binary.BigEndian.Uint32(k[:4]), Secret: append([]byte(nil), k[4:]...)},
		func() {
			r.mu.Lock()
			delete(r.mu.m, k)
			r.mu.Unlock()
		}
}

// RegisterKey registers t under a key issued before, by another pgvalve
// process that handed its client over (online restart). The returned func
// removes it.
func (r *Registry) RegisterKey(k Key, t Target) (func(), error) {
	if len(k.Secret) != keyLen-4 || k.PID == 0 {
		return nil, fmt.Errorf("cancel key of %d bytes, pid %d: not one pgvalve issues", len(k.Secret)+4, k.PID)
	}
	var kk key
	binary.BigEndian.PutUint32(kk[:4], k.PID)
	copy(kk[4:], k.Secret)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, taken := r.mu.m[kk]; taken {
		return nil, errors.New("cancel key taken already")
	}
	r.mu.m[kk] = t
	return func() {
		r.mu.Lock()
		delete(r.mu.m, kk)
		r.mu.Unlock()
	}, nil
}

// Cancel forwards a CancelRequest to the target registered under the key.
// It reports whether the key was known; unknown keys are ignored, as
// PostgreSQL ignores them.
func (r *Registry) Cancel(ctx context.Context, pid uint32, secret []byte) (bool, error) {
	if len(secret) != keyLen-4 {
		return false, nil
	}
	var k key
	binary.BigEndian.PutUint32(k[:4], pid)
	copy(k[4:], secret)
	r.mu.Lock()
	t, ok := r.mu.m[k]
	r.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, t.CancelCurrent(ctx)
}

// Len is the number of registered keys.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mu.m)
}
