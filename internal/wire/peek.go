package wire

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

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
	var perr syscall.Errno
	err = raw.Read(func(fd uintptr) bool {
		// Raw calls, as in Socket: neither can block.
		if hangup {
			fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
			var zero unix.Timespec
			for {
				_, _, perr = syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1,
					uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
				if perr != syscall.EINTR {
					break
				}
			}
			if perr == 0 {
				revents = fds[0].Revents
			} // else the recv below still tells a plain close
		}
		for {
			r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if e != syscall.EINTR {
				n, perr = int(r), e
				return true // never wait
			}
		}
	})
	if perr != 0 {
		n = 0
	} else if n > 0 {
		raceWrite(buf[:n])
	}
	switch {
	case err != nil:
		return PeekFailed, 0, err
	case revents&(unix.POLLERR|unix.POLLNVAL) != 0:
		return PeekFailed, 0, errors.New("socket error")
	case revents&(unix.POLLRDHUP|unix.POLLHUP) != 0:
		return PeekClosed, n, nil
	case perr == syscall.EAGAIN:
		return PeekQuiet, 0, nil
	case perr != 0:
		return PeekFailed, 0, perr
	case n == 0:
		return PeekClosed, 0, nil
	}
	return PeekData, n, nil
}
