//go:build !linux

package wire

import (
	"net"

	"golang.org/x/sys/unix"
)

// Without POLLRDHUP (Linux only) a close behind unread bytes looks like
// data: PeekInto reports PeekData, and PeekClosed once the bytes are read.
const peekSeesCloseBehindData = false

// peek is Peek and PeekInto where there is no POLLRDHUP: the portable half
// of the Linux implementation, one recv with MSG_PEEK|MSG_DONTWAIT inside
// syscall.RawConn.Read (so it never waits), through golang.org/x/sys/unix
// rather than raw system call numbers (darwin allows only libc's). hangup
// changes nothing here. A conn that is not a syscall.Conn reports
// PeekQuiet, which callers take as "nothing known". This is for the Unix
// systems x/sys/unix covers; pgvalve does not build for others (Socket
// uses raw read and write calls too).
func peek(c net.Conn, buf []byte, _ bool) (st PeekState, n int, err error) {
	raw, ok := rawOf(c)
	if !ok {
		return PeekQuiet, 0, nil
	}
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			n, _, perr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if perr != unix.EINTR {
				return true // never wait
			}
		}
	})
	if perr != nil {
		n = 0
	} else if n > 0 {
		raceWrite(buf[:n])
	}
	switch {
	case err != nil:
		return PeekFailed, 0, err
	case perr == unix.EAGAIN:
		return PeekQuiet, 0, nil
	case perr != nil:
		return PeekFailed, 0, perr
	case n == 0:
		return PeekClosed, 0, nil
	}
	return PeekData, n, nil
}
