package app

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// lookup finds or creates the pool for a client's database and user, and
// counts the client in until the route's Leave.
func (a *App) lookup(db, user string) (*session.Route, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entryLocked(db, user)
	if !ok {
		return nil, false
	}
	e.clients.Add(1)
	return &e.route, true // set once, when e was made
}

// entryLocked returns the pool of db and user, creating it from the
// configuration in force.
func (a *App) entryLocked(db, user string) (*entry, bool) {
	key := poolKey{db: db, user: user}
	if e, ok := a.mu.pools[key]; ok {
		return e, true
	}
	cfg := a.mu.cfg
	route, ok := cfg.PoolFor(db)
	if !ok || a.mu.closed {
		return nil, false
	}
	target, err := cfg.Target(route)
	if err != nil {
		// Validate already parsed every upstream; this cannot happen.
		a.log.Error("bad upstream", "db", db, "err", err)
		return nil, false
	}
	dial := dialConfig(cfg, target, db, user)
	route.PoolMode = cfg.UserPoolMode(dial.User, route) // [users.NAME] wins, as in PgBouncer
	e := &entry{key: key, dial: dial, target: target, params: &backend.ParamCache{}}
	e.pool = pool.New(pool.Config[*backend.Conn]{
		Name:     key.String(),
		Settings: poolSettings(cfg, route),
		Refused:  refusedLogin,
		Closed:   func(c *backend.Conn, why reason.Reason) { a.serverClosed(e, c, why) },
		Limits:   a.limitsLocked(db, dial.User),
		Hosts:    poolHosts(target),
		Balance:  balances[target.LoadBalanceHosts],
		TierOf:   tierOf(target),
		Dial:     func(ctx context.Context, host int) (*backend.Conn, error) { return a.dialHost(ctx, e, host) },
	})
	if len(target.Hosts) > 1 {
		e.watch = a.watchHosts(e)
	}
	e.notify = a.listenHub(e, route)
	if a.mu.paused || a.mu.pausedDBs[db] {
		e.pool.Pause() // a new pool has no server: nothing to close
	}
	e.route = session.Route{Pool: e.pool, Mode: route.PoolMode, Params: e.params, Leave: func() { a.leave(e) },
		Meter: &e.meter, Notify: e.notify, State: route.SessionState,
		Pinned: session.NewPinCount(maxPinned(cfg, route))}
	a.mu.pools[key] = e
	return e, true
}

// dialHost logs in a server of e's pool on its host-th host.
func (a *App) dialHost(ctx context.Context, e *entry, host int) (*backend.Conn, error) {
	c, err := a.loginTo(ctx, e, host, "", false)
	if err != nil {
		return nil, err
	}
	e.params.Store(c.Params())
	a.serverOpened(e, c)
	return c, nil
}

// loginTo logs in to e's host-th host as e's servers do, under appName
// when set, and checks that the server is what the route's
// target_session_attrs asks for (a *backend.RoleError, with the role, if
// not). learnRole learns the role even where any role fits.
func (a *App) loginTo(ctx context.Context, e *entry, host int, appName string, learnRole bool) (*backend.Conn, error) {
	cfg := a.serverDial(e)
	addr := e.target.Hosts[host]
	cfg.Host, cfg.Port = addr.Host, addr.Port
	attrs := e.target.TargetSessionAttrs
	cfg.LearnRole = learnRole || attrs != "any"
	if appName != "" {
		cfg.Params = maps.Clone(cfg.Params)
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["application_name"] = appName
	}
	c, err := backend.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !c.Role().Fits(attrs) {
		_ = c.Close()
		return nil, &backend.RoleError{Addr: addr.String(), Role: c.Role(), Attrs: attrs}
	}
	return c, nil
}

// balances maps load_balance_hosts to the pool's choice.
var balances = map[string]pool.Balance{
	"least-busy": pool.LeastBusy, "round-robin": pool.RoundRobin, "random": pool.Random, "disable": pool.FirstUp,
}

// poolHosts are a pool's hosts; none for one host, which keeps a
// single-host pool's stats as they were.
func poolHosts(target config.Upstream) []pool.Host {
	if len(target.Hosts) < 2 {
		return nil
	}
	out := make([]pool.Host, len(target.Hosts))
	for i, h := range target.Hosts {
		out[i] = pool.Host{Name: h.String(), Weight: h.Weight}
	}
	return out
}

// tierOf puts a primary behind the standbys for prefer-standby; the other
// target_session_attrs have one tier.
func tierOf(target config.Upstream) func(*backend.Conn) int {
	if target.TargetSessionAttrs != "prefer-standby" {
		return nil
	}
	return func(c *backend.Conn) int { return roleTier(c.Role()) }
}

// roleTier is a host's tier for prefer-standby: standbys first.
func roleTier(r backend.Role) int {
	if r.Standby {
		return 0
	}
	return 1
}

// serverDial is how a server of e's pool logs in now.
func (a *App) serverDial(e *entry) backend.Config {
	cfg := e.dial
	switch {
	case a.auth == config.AuthPassthrough:
		cfg.Password, _ = a.passwords.Get(e.key.String())
	case cfg.Password == "":
		cfg.Cred = a.serverCredential(cfg.User)
	}
	cfg.TLS = a.serverTLS.Load().Attempts
	return cfg
}

// ListenerAppName is the application_name of a pool's listening connection.
const ListenerAppName = "pgvalve listener"

// listenHub is e's shared listening connection (notify.Hub), for LISTEN
// in transaction and statement pooling; nil in session pooling. It logs in
// as the pool's servers do, outside the pool's size, to the first of the
// route's hosts that fits it (libpq's order): for a read-write route, the
// primary, where the NOTIFYs run.
func (a *App) listenHub(e *entry, route config.Database) *notify.Hub {
	if route.PoolMode == config.PoolSession || route.SessionState == config.StateOff {
		return nil
	}
	return notify.New(notify.Config{
		Name: e.key.String(),
		Log:  a.log,
		Dial: func(ctx context.Context) (*backend.Conn, error) {
			var errs []error
			for host := range e.target.Hosts {
				c, err := a.loginTo(ctx, e, host, ListenerAppName, false)
				if err == nil {
					return c, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
	})
}

// serverClosed counts and logs a server connection e's pool closed: why
// the server itself was unusable when it was given back as such.
func (a *App) serverClosed(e *entry, c *backend.Conn, why reason.Reason) {
	a.servers.Delete(serverKey{e.key, c.PID()})
	detail := ""
	if why == reason.NotReusable && c.BrokenReason() != reason.None {
		why, detail = c.BrokenReason(), c.Broken()
	}
	e.meter.Closed[why].Add(1)
	attrs := []any{"pool", e.key.String(), "pid", c.PID(), "reason", why.String()}
	if detail != "" {
		attrs = append(attrs, "detail", detail)
	}
	a.log.Info("server closed", attrs...)
}

// maxPinned is max_pinned_servers for route's pool: 0 means half the
// pool, at least one.
func maxPinned(cfg config.Config, route config.Database) int {
	if cfg.MaxPinnedServers > 0 {
		return cfg.MaxPinnedServers
	}
	return max(route.PoolSize/2, 1)
}

// poolSettings are the pool settings of route under cfg.
func poolSettings(cfg config.Config, route config.Database) pool.Settings {
	return pool.Settings{
		Size:        route.PoolSize,
		WaitTimeout: cfg.QueryWaitTimeout,
		DialTimeout: cfg.ServerConnectTimeout,
		RetryMax:    cfg.ServerLoginRetry,
		IdleTimeout: cfg.ServerIdleTimeout,
		Lifetime:    cfg.ServerLifetime,
		// A route's own smaller pool_size caps the global min_pool_size.
		MinSize:        min(cfg.MinPoolSize, route.PoolSize),
		ReserveSize:    cfg.ReservePoolSize,
		ReserveTimeout: cfg.ReservePoolTimeout,
	}
}

// dialConfig says how to log in to the server for a client of a route
// whose target (Config.Target) is up. A named route's URL may fix the
// server database and user; the global upstream passes the client's own
// database and user name through.
func dialConfig(c config.Config, up config.Upstream, db, user string) backend.Config {
	cfg := backend.Config{
		Host: up.Hosts[0].Host, Port: up.Hosts[0].Port, Database: db, User: user,
		Params: up.Params, MaxMessageSize: wire.MaxServerMessage,
	}
	if _, named := c.Databases[db]; named {
		if up.Database != "" {
			cfg.Database = up.Database
		}
		if up.User != "" {
			cfg.User = up.User
		}
	}
	if up.User == "" || up.User == cfg.User {
		cfg.Password = up.Password
	}
	// Without a password in the URL, PGPASSWORD or the password file may
	// supply it, as for psql; never in passthrough, whose password is the
	// client's own.
	cfg.EnvPassword = c.Auth != config.AuthPassthrough
	return cfg
}

// serverCredential is how to log in to a server as user when the upstream
// URL gives no password: what a client's login taught (SCRAM keys, an md5
// hash), else what auth_file holds (a password or an md5 hash), else
// nothing (and then PGPASSWORD or the password file, as for psql).
func (a *App) serverCredential(user string) backend.Credential {
	if cred, ok := a.front.Learned.Get(user); ok {
		return cred
	}
	if users := a.users.Load(); users != nil {
		if s, ok := users.Lookup(user); ok {
			return s.Credential()
		}
	}
	return backend.Credential{}
}

// verify proves a passthrough client's password: one the upstream accepted
// for this pool within the last few seconds passes; any other costs one
// server login.
func (a *App) verify(ctx context.Context, db, user, password string) error {
	a.mu.Lock()
	e, ok := a.entryLocked(db, user)
	a.mu.Unlock()
	if !ok {
		return errors.New("no such database")
	}
	key := poolKey{db: db, user: user}.String()
	if a.passwords.Matches(key, password, time.Now()) {
		return nil
	}
	cfg := e.dial
	cfg.Password = password
	cfg.TLS = a.serverTLS.Load().Attempts
	conn, err := backend.Dial(ctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == wire.CodeInvalidPassword {
			a.passwords.Forget(key, password)
		}
		return err
	}
	_ = conn.Close()
	a.passwords.Accept(key, password, time.Now())
	return nil
}

// limitsLocked returns the shared caps for a pool of database db logging in
// as user: max_db_connections and max_user_connections.
func (a *App) limitsLocked(db, user string) []*pool.Limit {
	byDB, ok := a.mu.dbLimits[db]
	if !ok {
		byDB = pool.NewLimit("max_db_connections "+db, a.mu.cfg.MaxDBConnections)
		a.mu.dbLimits[db] = byDB
	}
	byUser, ok := a.mu.userLimits[user]
	if !ok {
		byUser = pool.NewLimit("max_user_connections "+user, a.mu.cfg.UserMaxConnections(user))
		a.mu.userLimits[user] = byUser
	}
	return []*pool.Limit{byDB, byUser}
}

// refusedLogin tells a server's refusal of the login, which every waiting
// client gets at once, from a server that cannot take this connection
// right now, which is retried while they wait. Only errors about the login
// itself are refusals: a wrong password or method (class 28), a database
// that does not exist (3D000), no permission to connect (class 42), a bad
// startup setting (class 22), an unsupported request (0A000), or TLS that
// fails (backend.TLSError: a certificate server_tls_* does not accept, a
// server without the TLS it requires), which no retry mends. The rest
// (unreachable, starting up or shutting down, too many connections, out of
// resources, the backend terminated during login) pass.
func refusedLogin(err error) bool {
	var tlsErr *backend.TLSError
	if errors.As(err, &tlsErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "28", "42", "22":
		return true
	}
	return pgErr.Code == wire.CodeInvalidCatalogName || pgErr.Code == wire.CodeFeatureNotSupported
}
