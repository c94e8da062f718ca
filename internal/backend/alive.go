package backend

import (
	"errors"
	"syscall"
)

// Alive reports whether an idle server connection is still usable, with one
// non-blocking peek at its socket: a server that ended (pg_terminate_backend,
// a restart) has sent its FATAL and closed, which shows up here without a
// round trip. A connection found dead is marked broken. Only plain TCP and
// unix sockets can be peeked; others are assumed alive.
func (c *Conn) Alive() bool {
	if c.closed.Load() || c.broken != "" {
		return false
	}
	sc, ok := c.netConn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
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
		c.MarkBroken("peek failed: " + err.Error())
	case errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK):
		return true
	case perr != nil:
		c.MarkBroken("peek failed: " + perr.Error())
	case n == 0:
		c.MarkBroken("server closed the connection")
	default:
		// An idle server has nothing to say; whatever it sent (most
		// likely a FATAL before closing) means it is not usable.
		c.MarkBroken("server sent data while idle")
	}
	return false
}
