// Package listener runs accept loops: it hands each connection to a handler
// goroutine it tracks, backs off on temporary accept errors instead of
// exiting, and admits at most a fixed number of clients at once.
package listener

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/cleanup"
)

// Handler serves one connection and closes it. It runs ends once the
// connection is done, perhaps after returning: a client parked while idle
// (internal/park) ends on whichever goroutine resumes it, and Serve waits
// for ends, not for Handler, before it returns.
type Handler func(ctx context.Context, conn net.Conn, ends *cleanup.Stack)

// Config configures Serve.
type Config struct {
	// MaxConns says how many connections may be served at once; over it,
	// Refuse gets the connection instead of Handle. It is asked at every
	// accept, so a reload can change it; lowering it ends no connection.
	MaxConns func() int
	// Admit, if set, runs in the accept loop itself, before a goroutine is
	// started, so it keeps pace with a flood of connections: it returns
	// the connection to hand to Handle (it may wrap it), or false to have
	// Refuse answer it.
	Admit  func(conn net.Conn) (net.Conn, bool)
	Handle Handler
	Refuse func(conn net.Conn)
	Log    *slog.Logger
}

// Serve accepts on ln until ctx ends or ln is closed, then waits for every
// handler it started to return. Handlers receive ctx, so cancelling it is
// how the owner asks them to stop.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var served atomic.Int64 // connections being handled
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and retry rather
			// than drop every future client (net/http does the same).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			cfg.Log.Warn("accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0 // Go sets TCP_NODELAY on every connection it accepts
		wg.Add(1)
		admitted := true
		if cfg.Admit != nil {
			conn, admitted = cfg.Admit(conn)
		}
		if admitted && served.Add(1) <= int64(max(cfg.MaxConns(), 1)) {
			ends := new(cleanup.Stack)
			ends.Push(wg.Done)
			ends.Push(func() { served.Add(-1) })
			go cfg.Handle(ctx, conn, ends)
			continue
		}
		if admitted {
			served.Add(-1)
		}
		go func() {
			defer wg.Done()
			cfg.Refuse(conn)
		}()
	}
}
