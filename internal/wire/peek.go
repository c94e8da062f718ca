package wire

import (
	"errors"
	"net"
	"syscall"
)

// PeekState is what one non-blocking peek at a socket found.
type PeekState int

const (
	PeekQuiet  PeekState = iota // open, nothing to read (or not peekable)
	PeekData                    // open, with bytes waiting
	PeekClosed                  // the peer closed the connection
	PeekFailed                  // the socket reports an error
)

// Peek looks at c without reading from it or waiting: one recv with
// MSG_PEEK|MSG_DONTWAIT. Only plain TCP and unix sockets can be peeked;
// others report PeekQuiet. err says why for PeekFailed.
func Peek(c net.Conn) (PeekState, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return PeekQuiet, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return PeekQuiet, nil
	}
	var n int
	var perr error
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // one attempt; never wait
	})
	switch {
	case err != nil:
		return PeekFailed, err
	case errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK):
		return PeekQuiet, nil
	case perr != nil:
		return PeekFailed, perr
	case n == 0:
		return PeekClosed, nil
	}
	return PeekData, nil
}
