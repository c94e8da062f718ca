//go:build linux

package wire

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const peekSeesCloseBehindData = true

// peeker is one look at a socket on Linux: raw calls (neither can block),
// a ppoll for POLLRDHUP when hangup is set, then a recvfrom with
// MSG_PEEK|MSG_DONTWAIT.
type peeker struct {
	raw     syscall.RawConn
	buf     []byte
	hangup  bool
	fn      func(fd uintptr) // look, bound once
	revents int16
	n       int
	perr    syscall.Errno
}

// look is the raw part, run by raw.Control: it never waits, so a read
// deadline (a past one wakes an idle client's read) does not stop it.
func (p *peeker) look(fd uintptr) {
	// Raw calls, as in Socket: neither can block.
	if p.hangup {
		fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		var zero unix.Timespec
		var perr syscall.Errno
		for {
			_, _, perr = syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1,
				uintptr(unsafe.Pointer(&zero)), 0, 0, 0)
			if perr != syscall.EINTR {
				break
			}
		}
		if perr == 0 {
			p.revents = fds[0].Revents
		} // else the recv below still tells a plain close
	}
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)),
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			p.n, p.perr = int(r), e
			return // never wait
		}
	}
}

// peek looks once.
func (p *peeker) peek() (st PeekState, n int, err error) {
	p.revents, p.n, p.perr = 0, 0, 0
	err = p.raw.Control(p.fn)
	revents, n, perr := p.revents, p.n, p.perr
	if perr != 0 {
		n = 0
	} else if n > 0 {
		raceWrite(p.buf[:n])
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
