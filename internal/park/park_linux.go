package park

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Lot is one epoll instance and the goroutine that waits on it. Its
// owner closes it once nothing is parked in it.
type Lot struct {
	epfd, wakefd int
	every        time.Duration
	tick         func()

	parks atomic.Uint64

	mu      sync.Mutex
	waiters map[int32]func()
	closed  bool
	done    chan struct{}
}

// ErrClosed is returned by Wait once the Lot is closed.
var ErrClosed = errors.New("park: lot closed")

// Open starts a Lot. tick, if not nil, runs on the Lot's goroutine about
// every period (the owner uses it to look for clients idle long enough to
// park); it must not block.
func Open(tick func(), every time.Duration) (*Lot, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
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
	l := &Lot{epfd: epfd, wakefd: wakefd, every: every, tick: tick,
		waiters: make(map[int32]func()), done: make(chan struct{})}
	go l.loop()
	return l, nil
}

// Wait parks fd: wake runs once, on the Lot's goroutine, when fd is
// readable or hung up, unless Forget comes first. wake must not block (it
// starts the goroutine that carries on). A fd is parked at most once at a
// time.
func (l *Lot) Wait(fd int, wake func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.waiters[int32(fd)] = wake
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
	err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	if errors.Is(err, unix.EEXIST) { // fired before and never forgotten: re-arm it
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	}
	if err != nil {
		delete(l.waiters, int32(fd))
		return err
	}
	l.parks.Add(1)
	return nil
}

// Forget takes fd out of the Lot, before its socket is read again or
// closed (a closed fd's number is soon another client's). A wake already
// firing may still run once: wakes must tolerate coming late.
func (l *Lot) Forget(fd int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiters, int32(fd))
	if !l.closed {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

// Parked reports how many sockets wait in the Lot.
func (l *Lot) Parked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}

// Parks counts the Waits that parked a socket since the Lot opened.
func (l *Lot) Parks() uint64 { return l.parks.Load() }

// Close stops the Lot's goroutine and waits for it. Sockets still parked
// are never woken by it: the owner wakes their clients another way (a
// shutdown ends them) before closing.
func (l *Lot) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return
	}
	l.closed = true
	l.mu.Unlock()
	var one = [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:])
	<-l.done
	unix.Close(l.epfd)
	unix.Close(l.wakefd)
}

func (l *Lot) loop() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 128)
	timeout := -1
	if l.tick != nil {
		timeout = int(l.every / time.Millisecond)
	}
	next := time.Now().Add(l.every)
	for {
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return // EBADF and the like: the Lot is unusable
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == l.wakefd {
				return
			}
			if wake := l.take(ev.Fd); wake != nil {
				wake()
			}
		}
		if l.tick != nil && !time.Now().Before(next) {
			l.tick()
			next = time.Now().Add(l.every)
		}
	}
}

// take removes and returns fd's wake, if it is still parked.
func (l *Lot) take(fd int32) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	wake := l.waiters[fd]
	delete(l.waiters, fd)
	return wake
}
