package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/console"
	"github.com/pgvalve/pgvalve/internal/frontend"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Hooks are what only pgvalve's owner (cmd/pgvalve) can do, for the admin
// console's RELOAD and SHUTDOWN and its SHOW VERSION.
type Hooks struct {
	Version  string
	Reload   func() error // rereads --config; nil when there is none
	Shutdown func()       // stops pgvalve as SIGINT does
}

// SetHooks installs the owner's hooks; call it before Serve. Without
// them the console still serves, but RELOAD and SHUTDOWN are refused.
func (a *App) SetHooks(h Hooks) { a.hooks = h }

// serveConsole serves a client of database pgvalve or pgbouncer: users in
// admin_users may run every command, those in stats_users the SHOWs.
func (a *App) serveConsole(ctx context.Context, c session.Client) error {
	cfg := a.config()
	role, err := console.Authorize(c.User, cfg.AdminUsers, cfg.StatsUsers)
	if err != nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Conn.Write(wire.AppendError(nil, wire.SeverityFatal, wire.CodeInvalidAuthSpec, err.Error()))
		a.env.Errors.Add(wire.CodeInvalidAuthSpec)
		a.log.Info("console login refused", "user", c.User, "client", frontend.ClientAddr(c.Conn))
		return err
	}
	if _, err := c.Conn.Write(wire.Append(nil, &pgproto3.AuthenticationOk{})); err != nil {
		return err
	}
	return console.Serve(ctx, c.Conn, c.Reader, console.Login{User: c.User, Role: role}, consoleBackend{source{a}})
}

// consoleBackend is the app as the console's Backend.
type consoleBackend struct{ source }

func (b consoleBackend) Databases() []console.Database {
	var out []console.Database
	seen := map[string]bool{}
	for _, e := range b.a.entries(func() {}) {
		if seen[e.key.db] || e.retired.Load() {
			continue
		}
		seen[e.key.db] = true
		st := e.pool.Stats()
		out = append(out, console.Database{Name: e.key.db, Host: hostNames(e.target), Port: e.dial.Port, DBName: e.dial.Database,
			PoolSize: st.Size, PoolMode: string(e.route.Mode), Paused: st.Paused, LoadBalanceHosts: balanceOf(e.target)})
	}
	slices.SortFunc(out, func(x, y console.Database) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

func (b consoleBackend) Peers() []console.Peer {
	cfg := b.a.config()
	out := make([]console.Peer, 0, len(cfg.Peers))
	for id, p := range cfg.Peers {
		port := p.Port
		if port == 0 {
			port = config.DefaultPeerPort
		}
		out = append(out, console.Peer{ID: id, Host: p.Host, Port: port, Self: id == cfg.PeerID})
	}
	slices.SortFunc(out, func(x, y console.Peer) int { return x.ID - y.ID })
	return out
}

func (b consoleBackend) Users() []console.User {
	var out []console.User
	seen := map[string]bool{}
	for _, e := range b.a.entries(func() {}) {
		if !seen[e.key.user] {
			seen[e.key.user] = true
			out = append(out, console.User{Name: e.key.user, PoolSize: -1, ReservePoolSize: -1})
		}
	}
	slices.SortFunc(out, func(x, y console.User) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

func (b consoleBackend) Config() []console.Setting {
	var out []console.Setting
	for _, it := range b.a.config().Items() {
		out = append(out, console.Setting{Key: it.Key, Value: it.Value, Default: it.Default, Changeable: it.Changeable})
	}
	slices.SortFunc(out, func(x, y console.Setting) int { return cmp.Compare(x.Key, y.Key) })
	return out
}

func (b consoleBackend) State() console.State {
	b.a.mu.Lock()
	defer b.a.mu.Unlock()
	return console.State{Paused: b.a.mu.paused, ShuttingDown: b.a.accepting.Err() != nil}
}

func (b consoleBackend) Version() string {
	if b.a.hooks.Version == "" {
		return "dev"
	}
	return b.a.hooks.Version
}

// Pause holds new transactions of db ("" = every database) and returns
// once none of its servers is in use, as PgBouncer's PAUSE does.
func (b consoleBackend) Pause(ctx context.Context, db string) error {
	if b.State().Paused {
		return errors.New("already suspended/paused")
	}
	if db == "" {
		b.a.Pause()
	} else if err := b.a.PauseDB(db); err != nil {
		return err
	}
	return b.a.quiet(ctx, db)
}

func (b consoleBackend) Resume(db string) error {
	if db != "" {
		return b.a.ResumeDB(db)
	}
	if !b.State().Paused {
		return errors.New("pooler is not paused/suspended")
	}
	b.a.Resume()
	return nil
}

func (b consoleBackend) Reconnect(db string) error { return b.a.Reconnect(db) }

func (b consoleBackend) Kill(db string) error {
	if b.State().Paused {
		return errors.New("already suspended/paused")
	}
	return b.a.Kill(db)
}

func (b consoleBackend) KillClient(id uint64) error { return b.a.KillClient(id) }

func (b consoleBackend) WaitClose(ctx context.Context, db string) error {
	return b.a.WaitClose(ctx, db)
}

func (b consoleBackend) Reload() error {
	if b.a.hooks.Reload == nil {
		return coded{code: "F0000", msg: "RELOAD: pgvalve was started without --config; nothing to reload"}
	}
	return b.a.hooks.Reload()
}

func (b consoleBackend) Shutdown(mode console.ShutdownMode) error {
	if mode != console.ShutdownNow || b.a.hooks.Shutdown == nil {
		return notYet("this SHUTDOWN mode")
	}
	go b.a.hooks.Shutdown() // the console's own session ends with the rest
	return nil
}

// coded is an error with its SQLSTATE, which the console sends.
type coded struct{ code, msg string }

func (e coded) Error() string    { return e.msg }
func (e coded) SQLState() string { return e.code }

func notYet(what string) error {
	return coded{code: wire.CodeFeatureNotSupported, msg: fmt.Sprintf("%s is not supported by pgvalve yet", what)}
}

// hostNames is SHOW DATABASES' host column: the hosts' names, comma
// separated as PgBouncer's host setting, with a port where one differs
// from the first host's (the port column).
func hostNames(target config.Upstream) string {
	names := make([]string, len(target.Hosts))
	for i, h := range target.Hosts {
		names[i] = h.Host
		if h.Port != target.Hosts[0].Port {
			names[i] = h.String()
		}
	}
	return strings.Join(names, ",")
}

// balanceOf is SHOW DATABASES' load_balance_hosts: the route's, when it
// has several hosts.
func balanceOf(target config.Upstream) string {
	if len(target.Hosts) < 2 {
		return ""
	}
	return target.LoadBalanceHosts
}
