//go:build linux

package relaylab

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// eventLoops spreads pairs round-robin over its loops.
type eventLoops struct {
	loops []*loop
	next  int // only the accept loop calls add
	wg    sync.WaitGroup
}

func newEventLoops(n int, opts Options) (*eventLoops, error) {
	e := &eventLoops{}
	for range n {
		l, err := newLoop(opts)
		if err != nil {
			e.close()
			return nil, err
		}
		e.loops = append(e.loops, l)
		e.wg.Go(l.run)
	}
	return e, nil
}

// add moves the pair's sockets out of Go's netpoller and hands them to the
// next loop.
func (e *eventLoops) add(client, server net.Conn) {
	cfd, err := takeFD(client)
	if err != nil {
		server.Close()
		return
	}
	sfd, err := takeFD(server)
	if err != nil {
		unix.Close(cfd)
		return
	}
	e.loops[e.next%len(e.loops)].hand(cfd, sfd)
	e.next++
}

// waits sums the loops' sleeps in epoll_wait and the events returned.
func (e *eventLoops) waits() (sleeps, events int64) {
	for _, l := range e.loops {
		sleeps += l.sleeps.Load()
		events += l.waitEvents.Load()
	}
	return sleeps, events
}

func (e *eventLoops) close() {
	for _, l := range e.loops {
		l.stop()
	}
	e.wg.Wait()
}

// takeFD returns a duplicate of c's socket and closes c. Not File(): that
// makes the socket blocking for good (the flag belongs to the socket, not
// the descriptor). Closing c takes the original out of Go's epoll, so the
// duplicate belongs to one loop alone; it stays non-blocking.
func takeFD(c net.Conn) (int, error) {
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// loop is one epoll instance and the goroutine, locked to its thread, that
// waits on it. Everything below mu's fields belongs to that goroutine.
type loop struct {
	epfd, wakefd int
	trig         Trigger
	spin         int
	locked       bool

	mu      sync.Mutex
	queue   [][2]int // client and server sockets handed over, not yet registered
	closing bool

	// For the benchmark: how often the loop sleeps, how many events it gathers.
	sleeps, waitEvents atomic.Int64

	ends   []*end // by socket
	buf    []byte // every read lands here first
	events []unix.EpollEvent
}

// end is one socket of a pair.
type end struct {
	fd      int
	peer    *end
	pending []byte // read from peer, not yet written here: at most one read's worth
	stalled bool   // reading here waits until peer.pending is written
	closed  bool
}

func newLoop(opts Options) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return &loop{
		epfd: epfd, wakefd: wakefd, trig: opts.Trigger, spin: opts.Spin, locked: !opts.Unlocked,
		buf: make([]byte, bufSize), events: make([]unix.EpollEvent, 128),
	}, nil
}

// hand queues a pair for the loop to register. The eventfd is written under
// mu, so it is never written after the loop has closed it.
func (l *loop) hand(cfd, sfd int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		unix.Close(cfd)
		unix.Close(sfd)
		return
	}
	l.queue = append(l.queue, [2]int{cfd, sfd})
	l.wake()
}

func (l *loop) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closing {
		l.closing = true
		l.wake()
	}
}

func (l *loop) wake() {
	one := [8]byte{1} // the eventfd counter is a native-endian uint64; amd64 and arm64 are little-endian
	unix.Write(l.wakefd, one[:])
}

// run waits in epoll_wait (through Syscall, so the runtime may lend the P
// out meanwhile and a stop-the-world never waits on it) until stop. Locked
// to its thread, as PgBouncer's loop is its own thread, unless Unlocked.
func (l *loop) run() {
	if l.locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	defer l.shutdown()
	for {
		n, err := l.wait()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		l.waitEvents.Add(int64(n))
		// A closed socket's number may come back in a later registration
		// while stale events for it are still in this batch: every handler
		// only tries non-blocking calls, so such an event costs a read
		// that finds nothing.
		for _, ev := range l.events[:n] {
			if int(ev.Fd) == l.wakefd {
				if !l.admit() {
					return
				}
				continue
			}
			if e := l.endOf(int(ev.Fd)); e != nil {
				l.ready(e, ev.Events)
			}
		}
	}
}

// wait returns the next batch of events, polling up to spin times before
// it sleeps.
func (l *loop) wait() (int, error) {
	for range l.spin {
		if n, err := unix.EpollWait(l.epfd, l.events, 0); n > 0 || (err != nil && err != unix.EINTR) {
			return n, err
		}
	}
	l.sleeps.Add(1)
	return unix.EpollWait(l.epfd, l.events, -1)
}

// admit registers the queued pairs; false when the loop must end.
func (l *loop) admit() bool {
	var count [8]byte
	unix.Read(l.wakefd, count[:])
	l.mu.Lock()
	q, closing := l.queue, l.closing
	l.queue = nil
	l.mu.Unlock()
	if closing {
		return false // shutdown closes q, now back in l.queue's place
	}
	for _, p := range q {
		l.register(p[0], p[1])
	}
	return true
}

func (l *loop) shutdown() {
	for _, e := range l.ends {
		if e != nil {
			unix.Close(e.fd)
		}
	}
	l.ends = nil
	unix.Close(l.epfd)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for _, p := range l.queue {
		unix.Close(p[0])
		unix.Close(p[1])
	}
	l.queue = nil
	unix.Close(l.wakefd)
}

func (l *loop) endOf(fd int) *end {
	if fd >= 0 && fd < len(l.ends) {
		return l.ends[fd]
	}
	return nil
}

func (l *loop) register(cfd, sfd int) {
	c, s := &end{fd: cfd}, &end{fd: sfd}
	c.peer, s.peer = s, c
	for _, e := range []*end{c, s} {
		for e.fd >= len(l.ends) {
			l.ends = append(l.ends, nil)
		}
		l.ends[e.fd] = e
	}
	if l.ctl(unix.EPOLL_CTL_ADD, c) != nil || l.ctl(unix.EPOLL_CTL_ADD, s) != nil {
		l.closePair(c)
	}
}

// wants is what e waits for. Edge registrations never change: a socket
// reports input and output edges alike, and the handlers ignore what they
// do not need.
func (l *loop) wants(e *end) uint32 {
	if l.trig == Edge {
		return unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	}
	var ev uint32
	if !e.stalled {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if len(e.pending) > 0 {
		ev |= unix.EPOLLOUT
	}
	return ev
}

func (l *loop) ctl(op int, e *end) error {
	ev := unix.EpollEvent{Events: l.wants(e), Fd: int32(e.fd)}
	return unix.EpollCtl(l.epfd, op, e.fd, &ev)
}

// modify updates a level-triggered registration after a stall or a flush.
func (l *loop) modify(e *end) {
	if l.trig == Level && l.ctl(unix.EPOLL_CTL_MOD, e) != nil {
		l.closePair(e)
	}
}

// closePair closes both sockets at once: pending bytes are dropped, which
// PostgreSQL's protocol never needs (a side that leaves has said so).
// Closing the only descriptor of a socket removes it from epoll.
func (l *loop) closePair(e *end) {
	for _, x := range []*end{e, e.peer} {
		if !x.closed {
			x.closed = true
			unix.Close(x.fd)
			l.ends[x.fd] = nil
		}
	}
}

func (l *loop) ready(e *end, events uint32) {
	if events&unix.EPOLLOUT != 0 && len(e.pending) > 0 {
		l.flush(e)
	}
	if e.closed || events&^unix.EPOLLOUT == 0 {
		return
	}
	if e.stalled {
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.closePair(e)
		}
		return // edge: the flush that unstalls e reads it
	}
	// Input, a half-close, a hang-up or an error: the read tells which.
	l.pump(e, events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
}

// pump moves what src has to its peer. Level-triggered, one read: epoll
// reports src again if more is there. Edge-triggered, reads go on until one
// comes back short, which drains the socket (data that lands later raises
// a new edge), or until EOF when the event said the peer had closed.
func (l *loop) pump(src *end, toEOF bool) {
	dst := src.peer
	for {
		n, errno := rawIO(unix.SYS_READ, src.fd, l.buf)
		if errno == unix.EAGAIN {
			return
		}
		if errno != 0 || n == 0 {
			l.closePair(src)
			return
		}
		w, errno := writeAll(dst.fd, l.buf[:n])
		if errno != 0 && errno != unix.EAGAIN {
			l.closePair(src)
			return
		}
		if w < n {
			dst.pending = append(dst.pending[:0], l.buf[w:n]...)
			src.stalled = true
			l.modify(dst)
			l.modify(src)
			return
		}
		if l.trig == Level || (n < len(l.buf) && !toEOF) {
			return
		}
	}
}

// flush writes dst's pending bytes; once they are out, the peer may read
// again.
func (l *loop) flush(dst *end) {
	w, errno := writeAll(dst.fd, dst.pending)
	if errno != 0 && errno != unix.EAGAIN {
		l.closePair(dst)
		return
	}
	dst.pending = dst.pending[:copy(dst.pending, dst.pending[w:])]
	if len(dst.pending) > 0 {
		return
	}
	src := dst.peer
	src.stalled = false
	l.modify(dst)
	l.modify(src)
	if l.trig == Edge && !src.closed {
		l.pump(src, true) // its input edge may have come and gone meanwhile
	}
}

// writeAll writes p until done or the socket is full (EAGAIN, which also
// arms the output edge that resumes it).
func writeAll(fd int, p []byte) (int, syscall.Errno) {
	w := 0
	for w < len(p) {
		n, errno := rawIO(unix.SYS_WRITE, fd, p[w:])
		if errno != 0 {
			return w, errno
		}
		w += n
	}
	return w, 0
}

// rawIO is one read or write on a non-blocking socket, without telling the
// scheduler (it never blocks), retried when a signal interrupts it.
func rawIO(trap uintptr, fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
