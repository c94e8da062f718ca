//go:build !linux

package wire

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Without POLLRDHUP (Linux only) a close behind unread bytes looks like
// data: PeekInto reports PeekData, and PeekClosed once the bytes are read.
const peekSeesCloseBehindData = false

// peeker is one look at a socket where there is no POLLRDHUP: the
// portable half of the Linux implementation, one recv with
// MSG_PEEK|MSG_DONTWAIT inside syscall.RawConn.Read (so it never waits),
// through golang.org/x/sys/unix rather than raw system call numbers
// (darwin allows only libc's). hangup changes nothing here. A conn that is
// not a syscall.Conn reports PeekQuiet, which callers take as "nothing
// known". This is for the Unix systems x/sys/unix covers; pgvalve does not
// build for others (Socket uses raw read and write calls too).
type peeker struct {
	raw    syscall.RawConn
	buf    []byte
	hangup bool
	fn     func(fd uintptr) // look, bound once
	n      int
	perr   error
}

// look is the raw part, run by raw.Control: it never waits, so a read
// deadline (a past one wakes an idle client's read) does not stop it.
func (p *peeker) look(fd uintptr) {
	for {
		p.n, _, p.perr = unix.Recvfrom(int(fd), p.buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if p.perr != unix.EINTR {
			return // never wait
		}
	}
}

// peek looks once.
func (p *peeker) peek() (st PeekState, n int, err error) {
	p.n, p.perr = 0, nil
	err = p.raw.Control(p.fn)
	n, perr := p.n, p.perr
	if perr != nil {
		n = 0
	} else if n > 0 {
		raceWrite(p.buf[:n])
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
