package cancel

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"
)

// A fleet's key layout. The 4-byte pid of a key issued with peer_id set:
//
//	bit 31      0 in every key issued (clients see a positive pid); set
//	            on a request one instance forwards to another (hopBit)
//	bits 14-30  random
//	bits 0-13   the issuing instance's peer_id, 1 to MaxPeerID
//
// The secret's 4 bytes stay random. The peer_id is never 0, so neither is
// the pid.
const (
	peerBits  = 14
	MaxPeerID = 1<<peerBits - 1 // PgBouncer's limit too
	hopBit    = 1 << 31
)

// forwardTimeout bounds a forwarded cancel: the dial, the write and the
// wait for the peer to close, as PostgreSQL does once the cancel is sent.
// A client waits for its cancel's connection to close, and a cancel late
// by seconds is worth little.
const forwardTimeout = 5 * time.Second

// Peer is where a fleet's instance takes cancel requests: "tcp" and
// host:port, or "unix" and a socket path.
type Peer struct {
	Network, Address string
}

// fleetPID is a random pid (from rnd) naming instance self.
func fleetPID(rnd, self uint32) uint32 {
	return rnd&^(hopBit|MaxPeerID) | self
}

// peerOf is the instance a pid names and whether a peer forwarded it.
func peerOf(pid uint32) (owner uint32, forwarded bool) {
	return pid & MaxPeerID, pid&hopBit != 0
}

// SetPeers puts a fleet's instances in force, by peer_id; an entry for
// this instance itself is allowed and never used. A reload calls it; nil
// or empty forwards nothing.
func (r *Registry) SetPeers(peers map[int]Peer) {
	m := make(map[uint32]Peer, len(peers))
	for id, p := range peers {
		if id > 0 && id <= MaxPeerID && uint32(id) != r.self {
			m[uint32(id)] = p
		}
	}
	r.peers.Store(&m)
}

// forward sends a cancel request for a key that names instance owner to
// it, marked as forwarded so that it goes no further. A key naming no
// known peer is ignored.
func (r *Registry) forward(ctx context.Context, owner, pid uint32, secret []byte) (Outcome, error) {
	peers := r.peers.Load()
	if peers == nil || len(secret) != keyLen-4 {
		return Unknown, nil
	}
	p, ok := (*peers)[owner]
	if !ok {
		return Unknown, nil
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	if err := send(ctx, p, pid|hopBit, secret); err != nil {
		return Forwarded, fmt.Errorf("cancel: forward to peer %d at %s: %w", owner, p.Address, err)
	}
	return Forwarded, nil
}

// cancelRequestCode is the protocol's CancelRequest code (1234.5678).
const cancelRequestCode = 80877102

// send writes one CancelRequest to p and waits for p to close the
// connection, which it does once the cancel is on its way.
func send(ctx context.Context, p Peer, pid uint32, secret []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, p.Network, p.Address)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var pkt [16]byte
	binary.BigEndian.PutUint32(pkt[0:], 16)
	binary.BigEndian.PutUint32(pkt[4:], cancelRequestCode)
	binary.BigEndian.PutUint32(pkt[8:], pid)
	copy(pkt[12:], secret)
	if _, err := c.Write(pkt[:]); err != nil {
		return err
	}
	var one [1]byte
	_, _ = c.Read(one[:]) // EOF, or the deadline: the request went either way
	return nil
}
