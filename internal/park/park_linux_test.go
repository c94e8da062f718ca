package park

import (
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a connected loopback TCP pair and the server end's fd.
func pair(t *testing.T) (client, server net.Conn, fd int) {
	t.Helper()
	client, server = testutil.LoopbackPair(t)
	raw, err := server.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return client, server, fd
}

func open(t *testing.T) *Lot {
	t.Helper()
	l, err := Open(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func woken(ch chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

func TestAParkedSocketWakesWhenItsClientSpeaks(t *testing.T) {
	l := open(t)
	client, _, fd := pair(t)
	wake := make(chan struct{}, 2)
	if err := l.Wait(fd, func() { wake <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if woken(wake, 50*time.Millisecond) {
		t.Fatal("woke before the client sent anything")
	}
	if l.Parked() != 1 {
		t.Fatalf("%d parked, want 1", l.Parked())
	}
	client.Write([]byte("Q"))
	if !woken(wake, 5*time.Second) {
		t.Fatal("a client that spoke was never woken")
	}
	if l.Parked() != 0 || woken(wake, 50*time.Millisecond) {
		t.Fatal("a wake fired more than once, or stayed parked")
	}
}

func TestBytesThatCameBeforeTheParkWakeAtOnce(t *testing.T) {
	l := open(t)
	client, _, fd := pair(t)
	client.Write([]byte("Q"))
	time.Sleep(20 * time.Millisecond)
	wake := make(chan struct{}, 1)
	if err := l.Wait(fd, func() { wake <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !woken(wake, 5*time.Second) {
		t.Fatal("bytes waiting before the park were missed")
	}
	// Parked again after firing once (the fd is still in the epoll set).
	l.Forget(fd)
	if err := l.Wait(fd, func() { wake <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !woken(wake, 5*time.Second) {
		t.Fatal("a socket parked a second time with bytes waiting was missed")
	}
}

func TestAHangUpWakesTheParkedClient(t *testing.T) {
	l := open(t)
	client, _, fd := pair(t)
	wake := make(chan struct{}, 1)
	if err := l.Wait(fd, func() { wake <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if !woken(wake, 5*time.Second) {
		t.Fatal("a client that hung up was never woken")
	}
}

func TestAForgottenSocketIsNotWoken(t *testing.T) {
	l := open(t)
	client, _, fd := pair(t)
	wake := make(chan struct{}, 1)
	if err := l.Wait(fd, func() { wake <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	l.Forget(fd)
	client.Write([]byte("Q"))
	if woken(wake, 100*time.Millisecond) {
		t.Fatal("a forgotten socket was woken")
	}
}

func TestTheTickRunsAndCloseEndsTheLoop(t *testing.T) {
	ticks := make(chan struct{}, 10)
	l, err := Open(func() {
		select {
		case ticks <- struct{}{}:
		default:
		}
	}, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !woken(ticks, 5*time.Second) {
		t.Fatal("the tick never ran")
	}
	l.Close()
	l.Close()
	if err := l.Wait(0, func() {}); err != ErrClosed {
		t.Fatalf("Wait on a closed lot: %v, want ErrClosed", err)
	}
}
