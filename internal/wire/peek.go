package wire

import (
	"net"
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
