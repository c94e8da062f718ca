package wire

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
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

// PeekInto is Peek that first polls for POLLRDHUP, which sees a peer's
// close even behind unread bytes (a client that sent Terminate and hung
// up), and copies up to len(buf) waiting bytes into buf (n of them),
// without consuming them. It costs two syscalls.
func PeekInto(c net.Conn, buf []byte) (st PeekState, n int, err error) {
	return peek(c, buf, true)
}

func peek(c net.Conn, buf []byte, hangup bool) (st PeekState, n int, err error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return PeekQuiet, 0, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return PeekQuiet, 0, nil
	}
	var revents int16
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		for hangup {
			// Interrupted by a signal (Go's preemption uses them): again.
			if _, perr = unix.Poll(fds, 0); perr != syscall.EINTR {
				break
			}
		}
		if hangup && perr == nil {
			revents = fds[0].Revents
		} // else the recv below still tells a plain close
		for {
			n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if perr != syscall.EINTR {
				return true // never wait
			}
		}
	})
	n = max(n, 0)
	switch {
	case err != nil:
		return PeekFailed, 0, err
	case revents&(unix.POLLERR|unix.POLLNVAL) != 0:
		return PeekFailed, 0, errors.New("socket error")
	case revents&(unix.POLLRDHUP|unix.POLLHUP) != 0:
		return PeekClosed, n, nil
	case errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK):
		return PeekQuiet, 0, nil
	case perr != nil:
		return PeekFailed, 0, perr
	case n == 0:
		return PeekClosed, 0, nil
	}
	return PeekData, n, nil
}
