package wire

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Socket reads and writes a TCP or unix socket with raw system calls, for
// the relay's hot path. net.Conn enters every read and write through the
// Go scheduler's syscall path (entersyscall/exitsyscall); when such a call
// runs longer than 20 µs, as a loopback write that wakes PostgreSQL
// often does on a busy machine, the runtime's monitor hands the
// goroutine's P to another thread, and keeps polling every 20 µs while
// that goes on. On pgbench that was a tenth of pgvalve's CPU in sysmon
// sleeps alone, plus the thread wake-ups and context switches of the
// hand-offs (BENCHMARKS.md). The socket is non-blocking, so a raw call
// never blocks: EAGAIN waits in Go's poller exactly as net.Conn does,
// deadlines and Close included.
//
// Reads and writes may run at once; each direction is serialized, like
// net.Conn's, because a server can be handed to another client while the
// last client's write call is still returning.
type Socket struct {
	raw syscall.RawConn

	rmu  sync.Mutex
	rbuf []byte // the read in progress, for rfn
	rn   int
	rerr syscall.Errno
	rfn  func(fd uintptr) bool // built once: a Read allocates nothing
	rpfn func(fd uintptr) bool // readPooled's

	wmu  sync.Mutex
	wbuf []byte
	wn   int
	werr syscall.Errno
	wfn  func(fd uintptr) bool
}

// NewSocket returns a Socket for c, or c itself when c is not a plain
// socket (a net.Pipe in tests, a TLS connection).
func NewSocket(c net.Conn) io.ReadWriter {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return c
	}
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return c
	}
	s := &Socket{raw: raw}
	s.rfn, s.rpfn, s.wfn = s.read, s.readPool, s.write
	return s
}

// Read reads what is there into p, waiting for at least one byte.
func (s *Socket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf, s.rn, s.rerr = p, 0, 0
	err := s.raw.Read(s.rfn)
	s.rbuf = nil
	n, err := s.readResult(err)
	if err == nil {
		raceWrite(p[:n])
	}
	return n, err
}

// readResult is what a read that RawConn.Read ended with err came to.
func (s *Socket) readResult(err error) (int, error) {
	switch {
	case err != nil:
		return 0, err // a deadline or Close, as net.Conn reports them
	case s.rerr != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", s.rerr)}
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

// read is the RawConn callback: false means "wait until readable".
func (s *Socket) read(fd uintptr) bool {
	n, e := rawIO(syscall.SYS_READ, fd, s.rbuf)
	switch e {
	case 0:
		s.rn = n
	case syscall.EAGAIN:
		return false
	default:
		s.rerr = e
	}
	return true
}

// readPooled reads what is there into a buffer of DefaultBufferSize from
// the pool, waiting for at least one byte without holding one: the
// callback takes a buffer for each read it tries and gives it back before
// it waits. It costs no system call more than Read, and an idle
// connection parked in the poller holds no buffer. buf is nil when n is 0
// and err is not.
func (s *Socket) readPooled() (buf []byte, n int, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf, s.rn, s.rerr = nil, 0, 0
	err = s.raw.Read(s.rpfn)
	buf, s.rbuf = s.rbuf, nil
	if n, err = s.readResult(err); err != nil {
		if buf != nil {
			putBuf(buf)
		}
		return nil, 0, err
	}
	raceWrite(buf[:n])
	return buf, n, nil
}

// readPool is readPooled's RawConn callback: false means "wait until
// readable", with the buffer given back.
func (s *Socket) readPool(fd uintptr) bool {
	if s.rbuf == nil {
		s.rbuf = getBuf()
	}
	if s.read(fd) {
		return true
	}
	putBuf(s.rbuf)
	s.rbuf = nil
	return false
}

// Write writes all of p, waiting while the socket's buffer is full.
func (s *Socket) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf, s.wn, s.werr = p, 0, 0
	err := s.raw.Write(s.wfn)
	s.wbuf = nil
	if s.wn > 0 {
		raceRead(p[:s.wn])
	}
	switch {
	case err != nil:
		return s.wn, err
	case s.werr != 0:
		return s.wn, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", s.werr)}
	}
	return s.wn, nil
}

// write is the RawConn callback: false means "wait until writable".
func (s *Socket) write(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, e := rawIO(syscall.SYS_WRITE, fd, s.wbuf[s.wn:])
		switch e {
		case 0:
			s.wn += n
		case syscall.EAGAIN:
			return false
		default:
			s.werr = e
			return true
		}
	}
	return true
}

// rawIO is one read or write of p (not empty) on fd, retried when a signal
// interrupts it (Go's preemption sends them).
func rawIO(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
