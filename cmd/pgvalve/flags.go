package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/hba"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// runOpts are run-time choices that are not configuration.
type runOpts struct {
	cpuProfile string // write a CPU profile here until pgvalve stops
	configPath string // --config, which SIGHUP reads again; "" if none
	takeover   bool   // --takeover: take the listeners and clients of a running pgvalve
}

// loadConfig reads --config (if given) and applies every flag the user set
// on top of it, so flags override the file.
func loadConfig(name string, args []string, stderr io.Writer) (config.Config, error) {
	cfg, _, err := loadConfigOpts(name, args, stderr)
	return cfg, err
}

func loadConfigOpts(name string, args []string, stderr io.Writer) (config.Config, runOpts, error) {
	def := config.Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file: TOML, or PgBouncer's pgbouncer.ini; flags override it")
	listen := fs.String("listen", def.Listen, "address to accept clients on")
	var upstreams stringList
	fs.Var(&upstreams, "upstream", "PostgreSQL server for every database name: postgres://USER:PASS@HOST:PORT/DB; given again, another host of it")
	mode := fs.String("pool-mode", string(def.PoolMode), "session, transaction or statement")
	sessionState := fs.String("session-state", string(def.SessionState), "session state in transaction pooling: track, pin-all or off")
	maxPinned := fs.Int("max-pinned-servers", def.MaxPinnedServers, "servers a pool's clients may hold pinned by session state (0: half the pool)")
	size := fs.Int("pool-size", def.PoolSize, "server connections per database and user")
	wait := seconds(def.QueryWaitTimeout)
	fs.Var(&wait, "query-wait-timeout", "how long a client waits for a server before 53300: a duration (20s) or seconds (0: forever)")
	maxClients := fs.Int("max-client-conn", def.MaxClientConn, "most clients connected at once")
	authMode := fs.String("auth-type", string(def.Auth), "client authentication: trust, passthrough, scram-sha-256, md5, plain, cert or hba")
	fs.Var(aliasOf{fs.Lookup("auth-type")}, "auth", "the same as --auth-type")
	authFile := fs.String("auth-file", def.AuthFile, "users and their secrets, in PgBouncer's userlist.txt format")
	authUser := fs.String("auth-user", def.AuthUser, "user that runs auth-query for users auth-file does not list (off when empty)")
	authQuery := fs.String("auth-query", def.AuthQuery, "query returning (name, secret) of the user named by $1")
	authDBName := fs.String("auth-dbname", def.AuthDBName, "database auth-query runs in (default: the client's own)")
	hbaFile := fs.String("auth-hba-file", def.AuthHBAFile, "pg_hba.conf rules choosing each client's method, for --auth-type hba")
	socketDir := fs.String("unix-socket-dir", def.UnixSocketDir, "directory of the unix socket .s.PGSQL.<port> (none when empty)")
	socketMode := fs.String("unix-socket-mode", fmt.Sprintf("%04o", uint32(def.UnixSocketMode)), "permissions of the unix socket, octal")
	tlsFlags := map[string]*string{}
	for _, f := range []struct {
		name string
		def  string
		help string
	}{
		{"client-tls-sslmode", def.ClientTLS.SSLMode, "TLS to clients: disable, allow, prefer, require, verify-ca or verify-full"},
		{"client-tls-key-file", def.ClientTLS.KeyFile, "private key of pgvalve's certificate for clients (PEM)"},
		{"client-tls-cert-file", def.ClientTLS.CertFile, "pgvalve's certificate for clients (PEM)"},
		{"client-tls-ca-file", def.ClientTLS.CAFile, "CA that signs client certificates (PEM)"},
		{"client-tls-protocols", def.ClientTLS.Protocols, "secure (TLS 1.2 and 1.3), all, or a list such as tlsv1.3"},
		{"client-tls-ciphers", def.ClientTLS.Ciphers, "default, or IANA cipher suite names separated by ':'"},
		{"server-tls-sslmode", def.ServerTLS.SSLMode, "TLS to servers: disable, allow, prefer, require, verify-ca or verify-full (a route's URL naming sslmode decides for itself)"},
		{"server-tls-key-file", def.ServerTLS.KeyFile, "private key of the certificate pgvalve shows servers (PEM; optional)"},
		{"server-tls-cert-file", def.ServerTLS.CertFile, "certificate pgvalve shows servers (PEM; optional)"},
		{"server-tls-ca-file", def.ServerTLS.CAFile, "CA that signs servers' certificates (PEM), or system for the system's roots"},
		{"server-tls-protocols", def.ServerTLS.Protocols, "secure (TLS 1.2 and 1.3), all, or a list such as tlsv1.3"},
		{"server-tls-ciphers", def.ServerTLS.Ciphers, "default, or IANA cipher suite names separated by ':'"},
	} {
		tlsFlags[f.name] = fs.String(f.name, f.def, f.help)
	}
	logLevel := fs.String("log-level", def.LogLevel, "debug, info, warn or error")
	logFormat := fs.String("log-format", def.LogFormat, "log lines as text or json")
	slow := seconds(def.LogSlowQuery)
	fs.Var(&slow, "log-slow-query", "log a query that runs longer than this: a duration or seconds (0: off)")
	queryText := fs.Bool("log-query-text", def.LogQueryText, "show a query's first 100 characters in SHOW HOLDERS, the page and slow-query lines")
	adminUsers := fs.String("admin-users", "", "comma-separated users who may run every admin console command")
	statsUsers := fs.String("stats-users", "", "comma-separated users who may run the admin console's SHOW commands")
	metricsListen := fs.String("metrics-listen", def.MetricsListen, "serve /metrics, the live page and /api/ on this address (off when empty)")
	peerID := fs.Int("peer-id", def.PeerID, "this instance's peer_id in a fleet (1..16383), named by every cancel key it issues; 0: no fleet")
	var opts runOpts
	fs.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file until pgvalve stops")
	fs.BoolVar(&opts.takeover, "takeover", false, "online restart: take over the listening sockets and idle clients of the pgvalve running with this configuration (at takeover_socket), which then drains and exits")
	fs.Var(aliasOf{fs.Lookup("takeover")}, "R", "the same as --takeover (PgBouncer's -R)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, opts, err
	}
	joined, err := config.JoinUpstreams(upstreams)
	if err != nil {
		return config.Config{}, opts, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, opts, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := def
	opts.configPath = *path
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			return config.Config{}, opts, err
		}
	}
	set := map[string]func(){
		"listen":               func() { cfg.Listen = *listen },
		"upstream":             func() { cfg.Upstream = joined },
		"pool-mode":            func() { cfg.PoolMode = config.PoolMode(*mode) },
		"session-state":        func() { cfg.SessionState = config.SessionState(*sessionState) },
		"max-pinned-servers":   func() { cfg.MaxPinnedServers = *maxPinned },
		"pool-size":            func() { cfg.PoolSize = *size },
		"query-wait-timeout":   func() { cfg.QueryWaitTimeout = time.Duration(wait) },
		"max-client-conn":      func() { cfg.MaxClientConn = *maxClients },
		"auth-type":            func() { cfg.Auth = config.AuthMode(*authMode) },
		"auth":                 func() { cfg.Auth = config.AuthMode(*authMode) },
		"auth-file":            func() { cfg.AuthFile = *authFile },
		"auth-user":            func() { cfg.AuthUser = *authUser },
		"auth-query":           func() { cfg.AuthQuery = *authQuery },
		"auth-dbname":          func() { cfg.AuthDBName = *authDBName },
		"auth-hba-file":        func() { cfg.AuthHBAFile = *hbaFile },
		"unix-socket-dir":      func() { cfg.UnixSocketDir = *socketDir },
		"client-tls-sslmode":   func() { cfg.ClientTLS.SSLMode = *tlsFlags["client-tls-sslmode"] },
		"client-tls-key-file":  func() { cfg.ClientTLS.KeyFile = *tlsFlags["client-tls-key-file"] },
		"client-tls-cert-file": func() { cfg.ClientTLS.CertFile = *tlsFlags["client-tls-cert-file"] },
		"client-tls-ca-file":   func() { cfg.ClientTLS.CAFile = *tlsFlags["client-tls-ca-file"] },
		"client-tls-protocols": func() { cfg.ClientTLS.Protocols = *tlsFlags["client-tls-protocols"] },
		"client-tls-ciphers":   func() { cfg.ClientTLS.Ciphers = *tlsFlags["client-tls-ciphers"] },
		"server-tls-sslmode":   func() { cfg.ServerTLS.SSLMode = *tlsFlags["server-tls-sslmode"] },
		"server-tls-key-file":  func() { cfg.ServerTLS.KeyFile = *tlsFlags["server-tls-key-file"] },
		"server-tls-cert-file": func() { cfg.ServerTLS.CertFile = *tlsFlags["server-tls-cert-file"] },
		"server-tls-ca-file":   func() { cfg.ServerTLS.CAFile = *tlsFlags["server-tls-ca-file"] },
		"server-tls-protocols": func() { cfg.ServerTLS.Protocols = *tlsFlags["server-tls-protocols"] },
		"server-tls-ciphers":   func() { cfg.ServerTLS.Ciphers = *tlsFlags["server-tls-ciphers"] },
		"log-level":            func() { cfg.LogLevel = *logLevel },
		"log-format":           func() { cfg.LogFormat = *logFormat },
		"log-slow-query":       func() { cfg.LogSlowQuery = time.Duration(slow) },
		"log-query-text":       func() { cfg.LogQueryText = *queryText },
		"admin-users":          func() { cfg.AdminUsers = config.SplitNames(*adminUsers) },
		"stats-users":          func() { cfg.StatsUsers = config.SplitNames(*statsUsers) },
		"metrics-listen":       func() { cfg.MetricsListen = *metricsListen },
		"peer-id":              func() { cfg.PeerID = *peerID },
	}
	var badMode error
	set["unix-socket-mode"] = func() { cfg.UnixSocketMode, badMode = config.ParseMode(*socketMode) }
	fs.Visit(func(f *flag.Flag) {
		if apply, ok := set[f.Name]; ok {
			apply()
		}
	})
	if badMode != nil {
		return config.Config{}, opts, fmt.Errorf("--unix-socket-mode: %w", badMode)
	}
	if cfg.Auth == "password" {
		cfg.Auth = config.AuthPlain
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, opts, err
	}
	if cfg.AuthFile != "" {
		if _, err := auth.LoadUserlist(cfg.AuthFile); err != nil {
			return config.Config{}, opts, fmt.Errorf("auth_file: %w", err)
		}
	}
	if cfg.Auth == config.AuthHBA {
		if _, err := hba.Load(cfg.AuthHBAFile); err != nil {
			return config.Config{}, opts, fmt.Errorf("auth_hba_file: %w", err)
		}
	}
	if _, err := tlsconf.NewServer(cfg.ClientTLS); err != nil {
		return config.Config{}, opts, err
	}
	if _, err := tlsconf.NewUpstream(cfg.ServerTLS); err != nil {
		return config.Config{}, opts, err
	}
	if cfg.Upstream == "" && len(cfg.Databases) == 0 {
		return cfg, opts, errNoUpstream
	}
	return cfg, opts, nil
}

// errNoUpstream means neither --upstream nor a route was given; demo then
// starts its own PostgreSQL.
var errNoUpstream = errors.New("no upstream: give --upstream or [databases.NAME] routes in --config")

// portOf returns the port of a host:port address.
func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return port
}

// seconds is a duration flag that also takes a plain number of seconds, as
// PgBouncer's settings do.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is neither a duration (20s) nor a number of seconds", v)
	}
	*s = seconds(d)
	return nil
}

// aliasOf is a flag that sets another flag (--auth for --auth-type).
type aliasOf struct{ f *flag.Flag }

func (a aliasOf) String() string {
	if a.f == nil {
		return ""
	}
	return a.f.Value.String()
}

func (a aliasOf) Set(v string) error { return a.f.Value.Set(v) }

// IsBoolFlag lets the alias of a boolean flag go without a value, as the
// flag itself does.
func (a aliasOf) IsBoolFlag() bool {
	b, ok := a.f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
