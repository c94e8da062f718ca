package listener

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/cleanup"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServeAdmitsUpToMaxConnsRefusesTheRestAndWaitsForHandlers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	var handled, refused atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, Config{
			MaxConns: func() int { return 2 },
			Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			Handle: func(ctx context.Context, c net.Conn, ends *cleanup.Stack) {
				defer ends.Run()
				defer c.Close()
				handled.Add(1)
				<-release
			},
			Refuse: func(c net.Conn) { refused.Add(1); c.Close() },
		})
	}()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() != 2 || refused.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d, refused %d; want 2 and 1", handled.Load(), refused.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Serve returned while handlers were still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.Close()
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener must be closed once ctx ends")
	}
}

func TestServeWaitsForAConnectionThatOutlivesItsHandler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	handed := make(chan *cleanup.Stack, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, Config{
			MaxConns: func() int { return 1 },
			Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			// The handler returns at once and leaves the connection's end
			// to someone else, as a parked client does.
			Handle: func(ctx context.Context, c net.Conn, ends *cleanup.Stack) {
				ends.Push(func() { c.Close() })
				handed <- ends
			},
			Refuse: func(c net.Conn) { c.Close() },
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ends := <-handed
	cancel()
	select {
	case <-done:
		t.Fatal("Serve returned while a connection it accepted had not ended")
	case <-time.After(100 * time.Millisecond):
	}
	ends.Run()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
