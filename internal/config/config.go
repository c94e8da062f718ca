// Package config holds pgvalve's configuration: its defaults, its TOML file
// format (PgBouncer-style key names) and its validation. A Config is a plain
// value; build it with Default, Parse or Load and treat it as immutable.
package config

import (
	"cmp"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// PoolMode says when a server connection goes back to the pool.
type PoolMode string

// Pool modes, as in PgBouncer.
const (
	PoolSession     PoolMode = "session"
	PoolTransaction PoolMode = "transaction"
	PoolStatement   PoolMode = "statement"
)

// Valid reports whether m is one of the known pool modes.
func (m PoolMode) Valid() bool {
	switch m {
	case PoolSession, PoolTransaction, PoolStatement:
		return true
	}
	return false
}

// SessionState says what transaction and statement pooling do with the
// session state a client leaves on its server (README: "Session state").
type SessionState string

const (
	// StateTrack carries what can follow the client and pins it to its
	// server while the rest exists (the default).
	StateTrack SessionState = "track"
	// StatePinAll pins the client to its server from its first
	// session-level statement until it leaves.
	StatePinAll SessionState = "pin-all"
	// StateOff looks at nothing, as PgBouncer: state stays on the server.
	StateOff SessionState = "off"
)

// Valid reports whether s is one of the known values.
func (s SessionState) Valid() bool { return s == StateTrack || s == StatePinAll || s == StateOff }

// TLS is one side's TLS settings, PgBouncer's client_tls_* or
// server_tls_* keys.
type TLS struct {
	// SSLMode: disable, allow, prefer, require, verify-ca or verify-full.
	// For clients (default disable), require refuses clients without TLS
	// and the verify modes also ask for a client certificate signed by
	// CAFile. For servers (default prefer), as PgBouncer's and libpq's
	// sslmode: allow and prefer fall back on plaintext, require checks no
	// certificate, verify-ca checks the server's against CAFile and
	// verify-full its host name too.
	SSLMode string
	// KeyFile and CertFile are pgvalve's own certificate: the one clients
	// see, or the one it shows servers (optional there). CAFile checks the
	// peer's.
	KeyFile, CertFile, CAFile string
	Protocols                 string // "secure" (default: TLS 1.2 and 1.3), "all", or a list such as "tlsv1.3"
	Ciphers                   string // "default" (Go's choice), or a list of IANA cipher suite names
}

// SSLModes are the values of client_tls_sslmode and server_tls_sslmode,
// weakest first.
var SSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// On says whether TLS is offered at all.
func (t TLS) On() bool { return t.SSLMode != "" && t.SSLMode != "disable" }

// Required says whether a client without TLS is refused.
func (t TLS) Required() bool {
	return t.SSLMode == "require" || t.SSLMode == "verify-ca" || t.SSLMode == "verify-full"
}

// VerifyPeer says whether the peer must present a certificate CAFile signs.
func (t TLS) VerifyPeer() bool { return t.SSLMode == "verify-ca" || t.SSLMode == "verify-full" }

// SystemRoots is the server_tls_ca_file value that trusts the system's
// roots instead of a file, as libpq's sslrootcert=system.
const SystemRoots = "system"

// AuthMode says how clients are authenticated.
type AuthMode string

// Auth modes (auth_type, PgBouncer's names): trust lets every client in;
// passthrough asks for the password and has the upstream check it;
// scram-sha-256, md5 and plain check the client against auth_file; hba
// picks one of those (and reject, peer) per client from auth_hba_file.
const (
	AuthTrust       AuthMode = "trust"
	AuthPassthrough AuthMode = "passthrough"
	AuthSCRAM       AuthMode = "scram-sha-256"
	AuthMD5         AuthMode = "md5"
	AuthPlain       AuthMode = "plain" // "password" is read as plain
	AuthCert        AuthMode = "cert"  // the client certificate's common name is the user
	AuthHBA         AuthMode = "hba"   // per client, from auth_hba_file
)

// Valid reports whether a is one of the known auth modes.
func (a AuthMode) Valid() bool {
	switch a {
	case AuthTrust, AuthPassthrough, AuthSCRAM, AuthMD5, AuthPlain, AuthCert, AuthHBA:
		return true
	}
	return false
}

// UsesAuthFile says whether clients are checked against auth_file.
func (a AuthMode) UsesAuthFile() bool { return a == AuthSCRAM || a == AuthMD5 || a == AuthPlain }

// DefaultAuthQuery is PgBouncer's auth_query: the user's password unless
// it has expired, for a role that may log in.
const DefaultAuthQuery = "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

// MaxMessageSizeLimit is the largest allowed MaxMessageSize: PostgreSQL's own
// MaxAllocSize ceiling (1 GiB - 1).
const MaxMessageSizeLimit = 1<<30 - 1

// MinMessageSize is the smallest allowed MaxMessageSize; anything smaller
// would reject ordinary startup packets.
const MinMessageSize = 1024

// Config is the whole configuration. Treat it as immutable once built.
type Config struct {
	Listen                 string              // default "127.0.0.1:6432"
	Upstream               string              // default route: postgres URL for any database without its own route; "" = none
	PoolMode               PoolMode            // default session
	LoadBalanceHosts       string              // load_balance_hosts: which of a route's hosts a new lease goes to; default least-busy
	SessionState           SessionState        // session_state: default track
	MaxPinnedServers       int                 // max_pinned_servers: servers a pool's clients may hold pinned; 0 = half pool_size (at least 1)
	PoolSize               int                 // default 20, must be >= 1
	QueryWaitTimeout       time.Duration       // default 20s; 0 means wait forever (as in PgBouncer)
	QueryWaitNotify        time.Duration       // default 5s: NOTICE a client that has waited this long; 0 = never
	MaxDBConnections       int                 // servers per database across its pools; 0 = unlimited
	MaxUserConnections     int                 // servers per user across its pools; 0 = unlimited
	ServerConnectTimeout   time.Duration       // default 15s: a dial plus login
	ServerLoginRetry       time.Duration       // default 250ms: the longest backoff between failed dials while clients wait
	MaxPreparedStatements  int                 // default 200: statements kept prepared per server in transaction pooling; 0 = tracking off
	ServerIdleTimeout      time.Duration       // default 600s: close servers idle longer (down to MinPoolSize); 0 = never
	ServerLifetime         time.Duration       // default 3600s: close a server once its lease ends past this age (less up to 20% jitter); 0 = never
	ServerCheckDelay       time.Duration       // default 30s: a server idle longer is checked with an empty query before reuse; 0 = always
	HealthCheckPeriod      time.Duration       // health_check_period: default 5s: each host of a route with several is checked this often; 0 = never
	MaxReplicaLag          time.Duration       // max_replica_lag: a standby whose replay lags more leaves its pool's choice at its next check; 0 = no limit
	MinPoolSize            int                 // default 0: servers kept open per pool even with no client
	ReservePoolSize        int                 // default 0: extra servers per pool for clients that waited ReservePoolTimeout
	ReservePoolTimeout     time.Duration       // default 5s
	IdleTransactionTimeout time.Duration       // default 0 (off): a client idle this long inside a transaction is disconnected
	QueryTimeout           time.Duration       // default 0 (off): a query running longer is cancelled
	ClientIdleTimeout      time.Duration       // default 0 (off): a client idle this long outside a transaction is disconnected
	ClientParkDelay        time.Duration       // client_park_delay: default 1s: a client idle this long, holding no server, waits with no goroutine or buffer of its own; 0 = never
	MaxClientConn          int                 // default 1000, >= 1: clients that logged in
	MaxLoginConn           int                 // default 2000: connections still logging in; over it the oldest is shed
	MaxLoginConnPerAddr    int                 // default 200: the same from one address; 0 = no per-address bound
	Auth                   AuthMode            // auth_type (alias auth); default trust
	AuthFile               string              // auth_file: PgBouncer's userlist.txt; reread on reload
	AuthUser               string              // auth_user: logs in to run AuthQuery for users auth_file does not list; "" = off
	AuthQuery              string              // auth_query: returns (name, secret) for the user named by $1; default PgBouncer's
	AuthDBName             string              // auth_dbname: the database (route) AuthQuery runs in; "" = the client's own
	AuthHBAFile            string              // auth_hba_file: pg_hba.conf rules for auth_type hba; reread on reload
	UnixSocketDir          string              // default "/tmp": the unix socket .s.PGSQL.<port> goes here; "" = none
	UnixSocketMode         os.FileMode         // default 0777: the socket file's permissions
	TakeoverSocket         string              // takeover_socket: where a new pgvalve asks to take over (online restart); "" = .s.PGVALVE.<port> in unix_socket_dir
	ClientTLS              TLS                 // client_tls_*: TLS between clients and pgvalve
	ServerTLS              TLS                 // server_tls_*: TLS between pgvalve and PostgreSQL; a route's URL naming sslmode decides for itself
	ServerResetQuery       string              // default "DISCARD ALL"; "" disables
	MaxMessageSize         int                 // largest client protocol message accepted, bytes; default and maximum MaxMessageSizeLimit
	ClientLoginTimeout     time.Duration       // default 60s (PgBouncer's client_login_timeout); 0 = none
	ShutdownTimeout        time.Duration       // default 30s
	LogLevel               string              // "debug"|"info"|"warn"|"error", default "info"
	LogFormat              string              // "text" (default) or "json"
	LogQueryText           bool                // default true: SHOW HOLDERS, the page and slow-query lines show a query's first 100 characters
	LogSlowQuery           time.Duration       // default 0 (off): log a query that ran longer
	AdminUsers             []string            // may run every admin console command
	StatsUsers             []string            // may run the console's SHOW commands
	MetricsListen          string              // address of /metrics, the live page and /api/; "" (default) = off
	Databases              map[string]Database // routes keyed by the database name clients use
	Users                  map[string]User     // [users.NAME]: settings of the pools of server user NAME
	PeerID                 int                 // peer_id: this instance's id in a fleet, 1..MaxPeerID, in every cancel key it issues; 0 = none
	Peers                  map[int]Peer        // [peers.ID]: the fleet's instances, where cancel requests naming them are forwarded

	// src remembers where Parse found each value so that Validate can
	// point at file lines; nil for configs not built by Parse.
	src *source
	// notices are the keys of a PgBouncer file that were ignored.
	notices []string
}

// Notices are the keys of a PgBouncer file that were ignored, each with
// its file and line and what pgvalve does instead; none for TOML.
func (c Config) Notices() []string { return c.notices }

// Database is one [databases.NAME] route.
type Database struct {
	Name     string // the key
	Upstream string // postgres URL, required
	// Hosts (the host key), when set, replace the URL's hosts.
	Hosts []Address
	// TargetSessionAttrs says which hosts may serve the route, as libpq's
	// target_session_attrs: "" = the URL's, else any.
	TargetSessionAttrs string
	// LoadBalanceHosts: "" = the URL's, else Config.LoadBalanceHosts.
	LoadBalanceHosts string
	PoolMode         PoolMode // "" = inherit Config.PoolMode
	// SessionState: "" = inherit Config.SessionState.
	SessionState SessionState
	PoolSize     int // 0 = inherit Config.PoolSize
	Line         int // line of the [databases.NAME] header, for messages; 0 if unknown
}

// source is what Parse knew about the file a Config came from.
type source struct {
	name  string
	lines map[string]int // key path (toml.Key.String()) -> line
	// files names the file of a key whose line is in another file than
	// name: a PgBouncer file's %include.
	files map[string]string
	// poolSizeKey is the spelling used in the file: pool_size or its
	// alias default_pool_size, so messages name what the user wrote.
	poolSizeKey string
	// file holds the values exactly as parsed (databases deep-copied), so
	// Validate can tell them from values overridden later, which must not
	// be blamed on a file line.
	file Config
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		Listen:                "127.0.0.1:6432",
		PoolMode:              PoolSession,
		LoadBalanceHosts:      "least-busy",
		SessionState:          StateTrack,
		PoolSize:              20,
		QueryWaitTimeout:      20 * time.Second,
		QueryWaitNotify:       5 * time.Second,
		MaxPreparedStatements: 200,
		ServerConnectTimeout:  15 * time.Second,
		ServerLoginRetry:      250 * time.Millisecond,
		ServerIdleTimeout:     600 * time.Second,
		ServerLifetime:        3600 * time.Second,
		ServerCheckDelay:      30 * time.Second,
		HealthCheckPeriod:     5 * time.Second,
		ClientParkDelay:       time.Second,
		ReservePoolTimeout:    5 * time.Second,
		MaxClientConn:         1000,
		MaxLoginConn:          2000,
		MaxLoginConnPerAddr:   200,
		UnixSocketDir:         "/tmp",
		UnixSocketMode:        0o777,
		Auth:                  AuthTrust,
		AuthQuery:             DefaultAuthQuery,
		ClientTLS:             TLS{SSLMode: "disable", Protocols: "secure", Ciphers: "default"},
		ServerTLS:             TLS{SSLMode: "prefer", Protocols: "secure", Ciphers: "default"},
		ServerResetQuery:      "DISCARD ALL",
		MaxMessageSize:        MaxMessageSizeLimit,
		ClientLoginTimeout:    60 * time.Second,
		ShutdownTimeout:       30 * time.Second,
		LogLevel:              "info",
		LogFormat:             "text",
		LogQueryText:          true,
		Databases:             map[string]Database{},
		Users:                 map[string]User{},
		Peers:                 map[int]Peer{},
	}
}

// Load reads the file at path: a PgBouncer file (IsINI) with ParseINI,
// else TOML with Parse.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	if IsINI(data) {
		return ParseINI(path, data)
	}
	return Parse(path, data)
}

// Parse decodes TOML data on top of Default and validates the result. name
// (usually the file path) prefixes every message, as in "name:7: ...". All
// problems found are returned together, ordered by line.
func Parse(name string, data []byte) (Config, error) {
	cfg, probs, ok := decode(name, data)
	if !ok {
		return Config{}, join(name, probs)
	}
	probs = append(probs, cfg.problems()...)
	if err := join(name, probs); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Target is where route's servers log in: its upstream URL, with the
// route's own host list, target_session_attrs and load_balance_hosts in
// place of the URL's where it sets them, the global load_balance_hosts
// where neither does, and target_session_attrs any where neither does.
func (c Config) Target(route Database) (Upstream, error) {
	up, err := ParseUpstream(route.Upstream)
	if err != nil {
		return Upstream{}, err
	}
	if len(route.Hosts) > 0 {
		up.Hosts = route.Hosts
	}
	up.TargetSessionAttrs = cmp.Or(route.TargetSessionAttrs, up.TargetSessionAttrs, "any")
	up.LoadBalanceHosts = cmp.Or(route.LoadBalanceHosts, up.LoadBalanceHosts, c.LoadBalanceHosts, "least-busy")
	return up, nil
}

// PoolFor returns the route for a client's database name: its own
// [databases.NAME] route if there is one, else a route to the global Upstream
// named db, else ok=false. PoolMode and PoolSize of the returned route are
// resolved against the global settings, never empty or 0.
func (c Config) PoolFor(db string) (route Database, ok bool) {
	route, ok = c.Databases[db]
	if !ok {
		if c.Upstream == "" {
			return Database{}, false
		}
		route = Database{Upstream: c.Upstream}
	}
	route.Name = db
	if route.PoolMode == "" {
		route.PoolMode = c.PoolMode
	}
	if route.PoolSize == 0 {
		route.PoolSize = c.PoolSize
	}
	if route.SessionState == "" {
		route.SessionState = c.SessionState
	}
	return route, true
}

// TakeoverPath is where a pgvalve listening on port waits for a new one to
// take over from it (online restart): takeover_socket, else .s.PGVALVE.<port>
// in unix_socket_dir; "" when there is neither, or the port is not known.
func (c Config) TakeoverPath(port int) string {
	switch {
	case c.TakeoverSocket != "":
		return c.TakeoverSocket
	case c.UnixSocketDir == "" || port == 0:
		return ""
	}
	return filepath.Join(c.UnixSocketDir, ".s.PGVALVE."+strconv.Itoa(port))
}
