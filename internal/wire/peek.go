package wire

import (
	"net"
	"sync"
	"syscall"
)

// PeekState is what one non-blocking look at a socket found.
type PeekState int

// What Peek finds.
const (
	PeekQuiet  PeekState = iota // open, nothing to read (or not a socket it can look at)
	PeekData                    // open, with bytes waiting
	PeekClosed                  // the peer closed the connection (maybe after sending more)
	PeekFailed                  // the socket reports an error
)

// Peek looks at c without reading from it or waiting: one recv with
// MSG_PEEK. It sees a close only when nothing is left unread before it,
// which is enough for an idle server (anything it sends while idle means
// it is going away). Only plain TCP and unix sockets can be looked at;
// others report PeekQuiet. err says why for PeekFailed.
func Peek(c net.Conn) (PeekState, error) {
	var buf [1]byte
	st, _, err := peek(c, buf[:], false)
	return st, err
}

// Peeker is Peek for one connection looked at again and again (a pooled
// server before each lease): built once, each Peek allocates nothing.
// Its Peeks are serialized.
type Peeker struct {
	mu  sync.Mutex
	one [1]byte
	p   *peeker // nil: c cannot be looked at
}

// NewPeeker returns a Peeker for c.
func NewPeeker(c net.Conn) *Peeker {
	pk := &Peeker{}
	if raw, ok := rawOf(c); ok {
		pk.p = newPeeker(raw, pk.one[:], false)
	}
	return pk
}

// Peek is Peek(c).
func (pk *Peeker) Peek() (PeekState, error) {
	if pk.p == nil {
		return PeekQuiet, nil
	}
	pk.mu.Lock()
	defer pk.mu.Unlock()
	st, _, err := pk.p.peek()
	return st, err
}

// peek is Peek and PeekInto: one look through a peeker built for it.
func peek(c net.Conn, buf []byte, hangup bool) (st PeekState, n int, err error) {
	raw, ok := rawOf(c)
	if !ok {
		return PeekQuiet, 0, nil
	}
	return newPeeker(raw, buf, hangup).peek()
}

// newPeeker returns a peeker of raw into buf, its callback bound once so
// that a look allocates nothing.
func newPeeker(raw syscall.RawConn, buf []byte, hangup bool) *peeker {
	p := &peeker{raw: raw, buf: buf, hangup: hangup}
	p.fn = p.look
	return p
}

// PeekInto is Peek that also copies up to len(buf) waiting bytes into buf
// (n of them), without consuming them. On Linux it first polls for
// POLLRDHUP, which sees a peer's close even behind unread bytes (a client
// that sent Terminate and hung up); it costs two syscalls there. Elsewhere
// (peek_other.go) such a close reports PeekData with the bytes, and is
// seen as PeekClosed once they have been read.
func PeekInto(c net.Conn, buf []byte) (st PeekState, n int, err error) {
	return peek(c, buf, true)
}

// rawOf returns c's socket for raw calls; false for a conn that has none
// (not a TCP or unix socket), which Peek reports as PeekQuiet.
func rawOf(c net.Conn) (syscall.RawConn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}
