// Package cancel maps the cancel keys pgvalve gives its clients to whatever
// each client runs on a server right now. Clients never see server keys, so
// a cancel can only ever reach the server its own client holds at that
// moment. In a fleet (peer_id set) every key names the instance that
// issued it, and a cancel request that reaches another instance is
// forwarded to it (fleet.go).
package cancel

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	// self is this instance's peer_id, named by every key it issues; 0
	// outside a fleet, where keys are random but for a pid that is not 0.
	self  uint32
	peers atomic.Pointer[map[uint32]Peer] // the fleet, where a key naming another instance goes; a reload swaps it
	// elsewhere, while set, takes the requests for keys this instance
	// does not hold: during an online restart, the old process's clients
	// that have not come over yet.
	elsewhere atomic.Pointer[Elsewhere]
	mu        struct {
		sync.Mutex
		m map[key]Target
	}
}

// NewRegistry returns an empty registry for the instance whose peer_id is
// self (0: not in a fleet; at most MaxPeerID).
func NewRegistry(self int) *Registry {
	if self < 0 || self > MaxPeerID {
		panic("cancel: peer id out of range")
	}
	r := &Registry{self: uint32(self)}
	r.mu.m = make(map[key]Target)
	return r
}

// Register issues a fresh random key for t. The returned func removes it.
func (r *Registry) Register(t Target) (Key, func()) {
	var k key
	r.mu.Lock()
	for {
		_, _ = rand.Read(k[:])
		if r.self != 0 {
			binary.BigEndian.PutUint32(k[:4], fleetPID(binary.BigEndian.Uint32(k[:4]), r.self))
		}
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

// Outcome is what became of a cancel request.
type Outcome int

const (
	// Unknown: no client here holds the key, and it names no peer;
	// ignored, as PostgreSQL ignores unknown keys.
	Unknown Outcome = iota
	// Delivered: the key's client here was asked to cancel.
	Delivered
	// Forwarded: the key names another instance of the fleet, and the
	// request was sent on to it.
	Forwarded
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Forwarded:
		return "forwarded"
	}
	return "unknown"
}

// Cancel handles a CancelRequest: a key this instance issued reaches its
// client's target; in a fleet, a key naming a peer is forwarded to it once.
func (r *Registry) Cancel(ctx context.Context, pid uint32, secret []byte) (Outcome, error) {
	if r.self != 0 {
		owner, forwarded := peerOf(pid)
		pid &^= hopBit
		if owner != r.self {
			if forwarded {
				return Unknown, nil // a peer thinks it is ours: never a second hop
			}
			return r.forward(ctx, owner, pid, secret)
		}
	}
	return r.local(ctx, pid, secret)
}

// local delivers a cancel for a key this instance issued.
func (r *Registry) local(ctx context.Context, pid uint32, secret []byte) (Outcome, error) {
	if len(secret) != keyLen-4 {
		return Unknown, nil
	}
	var k key
	binary.BigEndian.PutUint32(k[:4], pid)
	copy(k[4:], secret)
	r.mu.Lock()
	t, ok := r.mu.m[k]
	r.mu.Unlock()
	if !ok {
		if send := r.elsewhere.Load(); send != nil {
			return Forwarded, (*send)(ctx, pid, secret)
		}
		return Unknown, nil
	}
	return Delivered, t.CancelCurrent(ctx)
}

// Elsewhere passes on a cancel request for a key this instance does not
// hold.
type Elsewhere func(ctx context.Context, pid uint32, secret []byte) error

// SetElsewhere sends the requests for unknown keys to f (nil: they are
// ignored again).
func (r *Registry) SetElsewhere(f Elsewhere) {
	if f == nil {
		r.elsewhere.Store(nil)
		return
	}
	r.elsewhere.Store(&f)
}

// Len is the number of registered keys.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mu.m)
}
