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
	"time"
)

// Handler serves one connection and closes it.
type Handler func(ctx context.Context, conn net.Conn)

// Config configures Serve.
type Config struct {
	// MaxConns is how many connections may be served at once; over it,
	// Refuse gets the connection instead of Handle.
	MaxConns int
	Handle   Handler
	Refuse   func(conn net.Conn)
	Log      *slog.Logger
}

// Serve accepts on ln until ctx ends or ln is closed, then waits for every
// handler it started to return. Handlers receive ctx, so cancelling it is
// how the owner asks them to stop.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	slots := make(chan struct{}, max(cfg.MaxConns, 1))
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
		delay = 0
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		wg.Add(1)
		select {
		case slots <- struct{}{}:
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				cfg.Handle(ctx, conn)
			}()
		default:
			go func() {
				defer wg.Done()
				cfg.Refuse(conn)
			}()
		}
	}
}
