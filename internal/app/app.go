// Package app owns pgvalve's lifecycle: it builds pools from the
// configuration, wires sessions to them, serves the listener and shuts
// everything down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/listener"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/session"
)

// App is one running pgvalve.
type App struct {
	cfg       config.Config
	log       *slog.Logger
	env       *session.Env
	passwords *auth.Passwords

	mu struct {
		sync.Mutex
		pools  map[poolKey]*entry
		closed bool
	}
}

type poolKey struct{ db, user string }

func (k poolKey) String() string { return k.db + "/" + k.user }

type entry struct {
	pool   *session.ServerPool
	route  session.Route
	dial   backend.Config
	params *backend.ParamCache
}

// New builds an App from a validated configuration.
func New(cfg config.Config, log *slog.Logger) *App {
	a := &App{cfg: cfg, log: log, passwords: auth.NewPasswords()}
	a.mu.pools = make(map[poolKey]*entry)
	a.env = &session.Env{
		Log:            log,
		Cancels:        cancel.NewRegistry(),
		Auth:           cfg.Auth,
		MaxMessageSize: cfg.MaxMessageSize,
		LoginTimeout:   cfg.ClientLoginTimeout,
		ResetQuery:     cfg.ServerResetQuery,
		Lookup:         a.lookup,
		Verify:         a.verify,
	}
	return a
}

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	return ln, nil
}

// Serve serves clients from ln until ctx ends; then it stops accepting,
// ends every session, closes every pool and returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	a.log.Info("pgvalve listening", "addr", ln.Addr().String(), "pool_mode", a.cfg.PoolMode, "pool_size", a.cfg.PoolSize)
	err := listener.Serve(ctx, ln, listener.Config{
		MaxConns: a.cfg.MaxClientConn,
		Log:      a.log,
		Handle: func(ctx context.Context, conn net.Conn) {
			session.Serve(ctx, a.env, conn)
		},
		Refuse: func(conn net.Conn) { session.Refuse(a.env, conn) },
	})
	a.closePools()
	return err
}

func (a *App) closePools() {
	a.mu.Lock()
	a.mu.closed = true
	pools := a.mu.pools
	a.mu.Unlock()
	for _, e := range pools {
		e.pool.Close()
	}
}

// Stats returns a snapshot of every pool, sorted by name.
func (a *App) Stats() []pool.Stats {
	a.mu.Lock()
	entries := make([]*entry, 0, len(a.mu.pools))
	for _, e := range a.mu.pools {
		entries = append(entries, e)
	}
	a.mu.Unlock()
	out := make([]pool.Stats, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.pool.Stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
