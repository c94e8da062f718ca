// Package app owns pgvalve's lifecycle: it builds pools from the
// configuration, wires sessions to them, serves the listener and shuts
// everything down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

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

	// Lifecycle: accepting ends when shutdown starts; drain asks sessions
	// to end at a safe point; sessions ends them at once; served closes
	// when Serve returns.
	accepting, sessions         context.Context
	stopAccepting, stopSessions context.CancelFunc
	drain                       context.CancelFunc
	served                      chan struct{}

	mu struct {
		sync.Mutex
		pools      map[poolKey]*entry
		dbLimits   map[string]*pool.Limit // nil values: no cap
		userLimits map[string]*pool.Limit
		closed     bool
	}
}

type poolKey struct{ db, user string }

func (k poolKey) String() string { return k.db + "/" + k.user }

type entry struct {
	pool    *session.ServerPool
	route   session.Route
	dial    backend.Config
	params  *backend.ParamCache
	clients atomic.Int64
}

// passwordFresh is how long a passthrough password the server accepted is
// trusted without a new server login: long enough to absorb a reconnect
// storm, short enough that a revoked password stops working within seconds.
const passwordFresh = 2 * time.Second

// New builds an App from a validated configuration.
func New(cfg config.Config, log *slog.Logger) *App {
	a := &App{cfg: cfg, log: log, passwords: auth.NewPasswords(passwordFresh), served: make(chan struct{})}
	a.mu.pools = make(map[poolKey]*entry)
	a.mu.dbLimits = make(map[string]*pool.Limit)
	a.mu.userLimits = make(map[string]*pool.Limit)
	a.accepting, a.stopAccepting = context.WithCancel(context.Background())
	a.sessions, a.stopSessions = context.WithCancel(context.Background())
	var drainCtx context.Context
	drainCtx, a.drain = context.WithCancel(context.Background())
	a.env = &session.Env{
		Log:                   log,
		Cancels:               cancel.NewRegistry(),
		Auth:                  cfg.Auth,
		MaxMessageSize:        cfg.MaxMessageSize,
		LoginTimeout:          cfg.ClientLoginTimeout,
		ResetQuery:            cfg.ServerResetQuery,
		WaitTimeout:           cfg.QueryWaitTimeout,
		WaitNotify:            cfg.QueryWaitNotify,
		MaxPreparedStatements: cfg.MaxPreparedStatements,
		CheckDelay:            cfg.ServerCheckDelay,
		IdleTxTimeout:         cfg.IdleTransactionTimeout,
		ClientIdleTimeout:     cfg.ClientIdleTimeout,
		QueryTimeout:          cfg.QueryTimeout,
		Drain:                 drainCtx,
		Lookup:                a.lookup,
		Verify:                a.verify,
	}
	return a
}

// SetKnobs installs test seams; call it before Serve.
func (a *App) SetKnobs(k *session.Knobs) { a.env.Knobs = k }

// Listen binds the configured address.
func (a *App) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	return ln, nil
}

// Serve serves clients from ln until Shutdown or Close; it returns once
// every session has ended and every pool is closed.
func (a *App) Serve(ln net.Listener) error {
	a.log.Info("pgvalve listening", "addr", ln.Addr().String(), "pool_mode", a.cfg.PoolMode, "pool_size", a.cfg.PoolSize)
	defer close(a.served)
	err := listener.Serve(a.accepting, ln, listener.Config{
		MaxConns: a.cfg.MaxClientConn,
		Log:      a.log,
		Handle: func(_ context.Context, conn net.Conn) {
			session.Serve(a.sessions, a.env, conn)
		},
		Refuse: func(conn net.Conn) { session.Refuse(a.env, conn) },
	})
	a.closePools()
	return err
}

// Shutdown stops accepting clients and lets each session finish: one that
// holds no server ends at once, one inside a transaction when its server
// goes back. When ctx ends first, the rest are closed as by Close. It
// returns when Serve has finished.
func (a *App) Shutdown(ctx context.Context) {
	a.startDrain()
	select {
	case <-a.served:
	case <-ctx.Done():
		a.log.Warn("shutdown timeout: closing remaining clients")
		a.Close()
	}
}

// Close stops accepting and ends every session at once, then waits for
// Serve to finish.
func (a *App) Close() {
	a.startDrain()
	a.stopSessions()
	<-a.served
}

func (a *App) startDrain() {
	a.stopAccepting()
	a.drain()
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

// PoolStats is one pool's snapshot with what only the app knows.
type PoolStats struct {
	pool.Stats
	Database, User string
	Mode           config.PoolMode
	// Clients is how many connected clients use the pool, with or
	// without a server at the moment.
	Clients int64
}

// Stats returns a snapshot of every pool, sorted by name.
func (a *App) Stats() []PoolStats {
	a.mu.Lock()
	out := make([]PoolStats, 0, len(a.mu.pools))
	entries := make(map[poolKey]*entry, len(a.mu.pools))
	maps.Copy(entries, a.mu.pools)
	a.mu.Unlock()
	for k, e := range entries {
		out = append(out, PoolStats{Stats: e.pool.Stats(), Database: k.db, User: k.user,
			Mode: e.route.Mode, Clients: e.clients.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
