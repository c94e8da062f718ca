//go:build linux

package wire

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const peekSeesCloseBehindData = true

// peek is Peek and PeekInto on Linux: raw calls (neither can block), a
// ppoll for POLLRDHUP when hangup is set, then a recvfrom with
// MSG_PEEK|MSG_DONTWAIT.
func peek(c net.Conn, buf []byte, hangup bool) (st PeekState, n int, err error) {
	raw, ok := rawOf(c)
	if !ok {
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
