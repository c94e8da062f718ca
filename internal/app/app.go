// Package app owns pgvalve's lifecycle: it builds pools from the
// configuration, wires sessions to them, serves the listener and shuts
// everything down in order.
package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/admission"
	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/authquery"
	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/cleanup"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/frontend"
	"github.com/pgvalve/pgvalve/internal/hba"
	"github.com/pgvalve/pgvalve/internal/listener"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/park"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// App is one running pgvalve.
type App struct {
	log       *slog.Logger
	listen    string          // bound once: a reload cannot change it
	auth      config.AuthMode // clients were admitted under it: a reload cannot change it
	env       *session.Env
	front     *frontend.Config
	clients   *registry                // live sessions, for Sessions
	lot       atomic.Pointer[park.Lot] // where idle clients park, once Serve runs (nil: they never do)
	giveBack  atomic.Pointer[giveBack] // the lot's memory return (park.go), with the lot
	hooks     Hooks                    // the owner's, for the console
	passwords *auth.Passwords
	authQuery *authquery.Cache               // auth_query's answers, briefly
	users     atomic.Pointer[auth.Userlist]  // auth_file; reloads replace it
	hba       atomic.Pointer[hba.Rules]      // auth_hba_file (auth_type hba); reloads replace it
	tls       atomic.Pointer[tlsconf.Server] // client_tls_*; nil when off
	// serverTLS is server_tls_*, read at every dial; never nil once New
	// returns.
	serverTLS atomic.Pointer[tlsconf.Upstream]
	servers   sync.Map // serverKey -> serverInfo: what SHOW SERVERS shows of open servers
	// maxClients is max_client_conn, read at every login; maxLogins is
	// max_login_conn, read at every accept.
	maxClients, maxLogins atomic.Int64
	gate                  *admission.Gate // logins in progress and clients

	// Lifecycle: accepting ends when shutdown starts; drain asks sessions
	// to end at a safe point; sessions ends them at once; served closes
	// when Serve returns.
	accepting, sessions         context.Context
	stopAccepting, stopSessions context.CancelFunc
	drain                       context.CancelFunc
	served                      chan struct{}
	// adopting counts the clients a takeover handed this process, which
	// it serves once started is closed (Serve has made the park.Lot).
	adopting adoptions
	started  chan struct{}

	// Lock order: mu before any pool's or limit's lock.
	mu struct {
		sync.Mutex
		cfg   config.Config // in force; Reload replaces it
		pools map[poolKey]*entry
		// retired are pools of routes a reload changed or removed: they
		// serve the clients they have until the last one leaves.
		retired    map[*entry]struct{}
		dbLimits   map[string]*pool.Limit
		userLimits map[string]*pool.Limit
		paused     bool            // PAUSE of every database
		pausedDBs  map[string]bool // PAUSE db, KILL db
		closed     bool
	}
}

type poolKey struct{ db, user string }

func (k poolKey) String() string { return k.db + "/" + k.user }

type entry struct {
	key   poolKey
	pool  *session.ServerPool
	route session.Route
	dial  backend.Config
	// target is where the servers log in: the hosts (dial names the
	// first), target_session_attrs and load_balance_hosts.
	target config.Upstream
	params *backend.ParamCache
	// clients counts sessions from Lookup until they end; a retired entry
	// is closed when it reaches 0.
	clients atomic.Int64
	retired atomic.Bool
	meter   observe.Meter // what the relay measures for this pool
	notify  *notify.Hub   // the shared listening connection; nil in session pooling
	watch   *hostWatch    // the health checks of a route with several hosts; nil for one
}

// listeners is how many listening connections e has open.
func (e *entry) listeners() int {
	if e.notify == nil {
		return 0
	}
	return e.notify.Conns()
}

// close closes e's pool and its listening connection.
func (e *entry) close() {
	if e.watch != nil {
		e.watch.stop()
	}
	e.pool.Close()
	if e.notify != nil {
		e.notify.Close()
	}
}

// passwordFresh is how long a passthrough password the server accepted is
// trusted without a new server login: long enough to absorb a reconnect
// storm, short enough that a revoked password stops working within seconds.
const passwordFresh = 2 * time.Second

// New builds an App from a validated configuration; it fails when the
// files the configuration names (auth_file, TLS keys and certificates)
// cannot be loaded.
func New(cfg config.Config, log *slog.Logger) (*App, error) {
	a := &App{log: log, listen: cfg.Listen, auth: cfg.Auth, passwords: auth.NewPasswords(passwordFresh),
		clients: newRegistry(), served: make(chan struct{}), started: make(chan struct{})}
	a.authQuery = authquery.NewCache(authQueryFresh, authQueryMax)
	a.maxClients.Store(int64(cfg.MaxClientConn))
	a.maxLogins.Store(int64(cfg.MaxLoginConn))
	a.gate = admission.New(cfg.MaxLoginConn, cfg.MaxLoginConnPerAddr)
	a.mu.cfg = cfg
	a.mu.pools = make(map[poolKey]*entry)
	a.mu.retired = make(map[*entry]struct{})
	a.mu.dbLimits = make(map[string]*pool.Limit)
	a.mu.userLimits = make(map[string]*pool.Limit)
	a.accepting, a.stopAccepting = context.WithCancel(context.Background())
	a.sessions, a.stopSessions = context.WithCancel(context.Background())
	var drainCtx context.Context
	drainCtx, a.drain = context.WithCancel(context.Background())
	a.env = &session.Env{
		Log:     log,
		Cancels: cancel.NewRegistry(cfg.PeerID),
		Drain:   drainCtx,
	}
	a.env.SetLive(liveSettings(cfg))
	a.front = &frontend.Config{
		Log:    log,
		Auth:   cfg.Auth,
		Relay:  a.env,
		Lookup: a.lookup,
		Verify: a.verify,
		Secret: a.secret,
		HBA:    a.hba.Load,
		Decoy:  decoyKey(),
		// Learned holds the keys and hashes server logins use when the
		// configuration gives no password.
		Learned: auth.NewCredentials(),
		TLS:     a.tls.Load,
		// Throttle slows password guessing per address.
		Throttle: auth.NewThrottle(),
	}
	a.front.Console = a.serveConsole
	a.env.Cancels.SetPeers(cancelPeers(cfg))
	if len(cfg.Peers) > 0 && cfg.PeerID == 0 {
		log.Warn("[peers] is set but peer_id is 0: this instance's cancel keys name no instance and no cancel request is forwarded; give it its peer_id (--peer-id)")
	}
	if err := a.loadFiles(cfg); err != nil {
		return nil, err
	}
	return a, nil
}

// cancelPeers is cfg's fleet as the cancel registry forwards to it.
func cancelPeers(cfg config.Config) map[int]cancel.Peer {
	out := make(map[int]cancel.Peer, len(cfg.Peers))
	for id, p := range cfg.Peers {
		network, addr := p.Addr()
		out[id] = cancel.Peer{Network: network, Address: addr}
	}
	return out
}

// decoyKey is a fresh random key for the fake verifiers of unknown users.
func decoyKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// loadFiles reads the files cfg names, at start and on reload: auth_file,
// auth_hba_file (auth_type hba) and the TLS keys, certificates and CAs of
// both sides. All load or none is put in force, so a reload with a bad
// file changes nothing of them (and says so).
func (a *App) loadFiles(cfg config.Config) error {
	var users *auth.Userlist
	if cfg.AuthFile != "" {
		var err error
		if users, err = auth.LoadUserlist(cfg.AuthFile); err != nil {
			return fmt.Errorf("auth_file: %w", err)
		}
	}
	var rules *hba.Rules
	if cfg.Auth == config.AuthHBA {
		var err error
		if cfg.AuthHBAFile == "" {
			return fmt.Errorf("auth_type hba takes its rules from auth_hba_file; set it")
		}
		if rules, err = hba.Load(cfg.AuthHBAFile); err != nil {
			return fmt.Errorf("auth_hba_file: %w", err)
		}
		if err := a.checkHBA(rules, cfg); err != nil {
			return fmt.Errorf("auth_hba_file: %w", err)
		}
	}
	srv, err := tlsconf.NewServer(cfg.ClientTLS)
	if err != nil {
		return err
	}
	up, err := tlsconf.NewUpstream(cfg.ServerTLS)
	if err != nil {
		return err
	}
	a.users.Store(users)
	a.hba.Store(rules)
	a.tls.Store(srv)
	if rules != nil {
		a.log.Info("auth_hba_file loaded", "file", cfg.AuthHBAFile, "lines", len(rules.Rules()))
	}
	if old := a.serverTLS.Swap(up); old != nil && !old.Same(up) {
		a.renewForTLS()
	}
	if users != nil {
		a.log.Info("auth_file loaded", "file", cfg.AuthFile, "users", users.Len())
	}
	return nil
}

// liveSettings are the session settings of cfg.
func liveSettings(cfg config.Config) session.Live {
	return session.Live{
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
		QueryText:             cfg.LogQueryText,
		SlowQuery:             cfg.LogSlowQuery,
	}
}

// SetKnobs installs test seams; call it before Serve.
func (a *App) SetKnobs(k *session.Knobs) { a.env.Knobs = k }

// Serve serves clients from ln (and its unix socket when ln is Listen's)
// until Shutdown or Close; it returns once every session has ended and
// every pool is closed.
func (a *App) Serve(ln net.Listener) error {
	cfg := a.config()
	a.log.Info("pgvalve listening", "addr", ln.Addr().String(), "pool_mode", cfg.PoolMode, "pool_size", cfg.PoolSize)
	defer close(a.served)
	lc := listener.Config{
		// The gate bounds logins (Admit); this bounds goroutines, of which
		// shed logins' may linger a moment: room for as many again.
		MaxConns: func() int { return int(a.maxClients.Load() + 4*a.maxLogins.Load()) },
		Log:      a.log,
		Admit:    a.admit,
		Handle: func(_ context.Context, conn net.Conn, ends *cleanup.Stack) {
			g := conn.(*gated)
			ends.Push(g.tk.Done)
			st, ctx, unlist := a.clients.add(a.sessions, g.Conn, g.addr)
			ends.Push(unlist)
			frontend.Serve(ctx, a.front, g.Conn, st, frontend.Gate{Talking: g.tk.Talking,
				Admit: func() bool { return g.tk.Admit(int(a.maxClients.Load())) }}, ends)
		},
		Refuse: func(conn net.Conn) {
			if g, ok := conn.(*gated); ok {
				g.tk.Done()
				conn = g.Conn
			}
			frontend.Refuse(a.front, conn)
		},
	}
	closeLot := a.openLot(cfg.ClientParkDelay)
	close(a.started)
	waitUnix := a.serveUnix(ln, lc)
	err := listener.Serve(a.accepting, ln, lc)
	waitUnix()
	a.adopting.wait()
	closeLot() // every client has ended: none is parked
	a.closePools()
	return err
}

// gated is an accepted connection with its place at admission and its
// address (frontend.ClientAddr: made once, for admission, the registry
// and the logs).
type gated struct {
	net.Conn
	tk   *admission.Ticket
	addr string
}

// admit gives a connection its place at admission, in the accept loop:
// a login that has to give way to it is closed at once, so a flood of
// silent sockets is shed as fast as it arrives. Unix socket clients have
// no address: they count as one, "unix", under max_login_conn_per_addr
// like any other address, so a local flood is shed the same way.
func (a *App) admit(conn net.Conn) (net.Conn, bool) {
	addr := frontend.ClientAddr(conn)
	tk := a.gate.Enter(frontend.HostOf(addr), func() { _ = conn.Close() })
	if tk == nil {
		return conn, false
	}
	return &gated{Conn: conn, tk: tk, addr: addr}, true
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
	a.clients.endAll(context.Canceled) // wakes each: none watches its context
	<-a.served
}

// Accepting reports whether pgvalve takes new clients: false once a
// shutdown began (a load balancer's readiness check should then send new
// clients elsewhere while running transactions finish).
func (a *App) Accepting() bool { return a.accepting.Err() == nil }

func (a *App) startDrain() {
	a.stopAccepting()
	a.drain()
	// Sessions watch no drain context of their own: each is told through
	// its entry (one that starts after this sees the drain itself).
	for _, st := range a.clients.statuses(nil) {
		st.Drain()
	}
}

func (a *App) closePools() {
	for _, e := range a.entries(func() { a.mu.closed = true }) {
		e.close()
	}
}

// config is the configuration in force.
func (a *App) config() config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.cfg
}

// entries lists every pool, retired ones included, after running update
// under the lock: pools created later see what it set.
func (a *App) entries(update func()) []*entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	update()
	out := make([]*entry, 0, len(a.mu.pools)+len(a.mu.retired))
	for _, e := range a.mu.pools {
		out = append(out, e)
	}
	for e := range a.mu.retired {
		out = append(out, e)
	}
	return out
}

// PoolStats is one pool's snapshot with what only the app knows.
type PoolStats struct {
	pool.Stats
	Database, User string
	Mode           config.PoolMode
	// Clients is how many connected clients use the pool, with or
	// without a server at the moment (logging in included).
	Clients int64
	// Meter is the pool's live histograms; read only.
	Meter *observe.Meter
	// Listeners is how many shared listening connections the pool has
	// open (0 or 1), outside its size.
	Listeners int
	// Pinned is how many of the pool's clients session state keeps on
	// their servers (max_pinned_servers bounds it).
	Pinned int64
}

// Stats returns a snapshot of every pool, sorted by name; a retired pool
// (Draining) comes after the pool that replaced it.
func (a *App) Stats() []PoolStats {
	entries := a.entries(func() {})
	out := make([]PoolStats, 0, len(entries))
	for _, e := range entries {
		out = append(out, PoolStats{Stats: e.pool.Stats(), Database: e.key.db, User: e.key.user,
			Mode: e.route.Mode, Clients: e.clients.Load(), Meter: &e.meter, Listeners: e.listeners(),
			Pinned: e.route.Pinned.Pinned()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return !out[i].Draining && out[j].Draining
	})
	return out
}
