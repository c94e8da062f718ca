package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Validate reports every problem with c, joined with errors.Join. A problem
// with a value that still is what the file set is prefixed with the file
// name and line; values set otherwise (defaults, flag overrides applied to
// a copy) are reported by key alone, e.g. "pool_size: must be at least 1".
func (c Config) Validate() error {
	name := ""
	if c.src != nil {
		name = c.src.name
	}
	return join(name, c.problems())
}

// checker collects validation problems, locating each through src.
type checker struct {
	src   *source
	probs []problem
}

// add records a problem about path. fileValue says the value checked is
// still the one parsed from the file, so the file line applies; when the
// key itself has no line (it was omitted), fallback's line is used.
func (k *checker) add(path toml.Key, fileValue bool, fallback toml.Key, format string, args ...any) {
	p := problem{key: path.String(), msg: fmt.Sprintf(format, args...)}
	if k.src != nil && fileValue {
		p.line, p.file = k.src.lines[p.key], k.src.files[p.key]
		if p.line == 0 && fallback != nil {
			p.line, p.file = k.src.lines[fallback.String()], k.src.files[fallback.String()]
		}
		p.fromFile = p.line > 0
	}
	k.probs = append(k.probs, p)
}

func (c Config) problems() []problem {
	k := &checker{src: c.src}
	var f Config // the file's values; zero (never matching) without a file
	poolSizeKey := "pool_size"
	if c.src != nil {
		f = c.src.file
		if c.PoolSize == f.PoolSize {
			poolSizeKey = c.src.poolSizeKey
		}
	}
	top := func(key string) toml.Key { return toml.Key{key} }

	if err := checkListen(c.Listen); err != nil {
		k.add(top("listen"), c.Listen == f.Listen, nil, "%v", err)
	}
	if c.Upstream != "" {
		if _, err := parseUpstream(c.Upstream); err != nil {
			k.add(top("upstream"), c.Upstream == f.Upstream, nil, "%v", err)
		}
	}
	if err := oneOf("load_balance_hosts", c.LoadBalanceHosts, LoadBalanceHosts); err != nil {
		k.add(top("load_balance_hosts"), c.LoadBalanceHosts == f.LoadBalanceHosts, nil, "%v", err)
	}
	if !c.SessionState.Valid() {
		k.add(top("session_state"), c.SessionState == f.SessionState, nil, "%q is not one of track, pin-all, off", c.SessionState)
	}
	if c.MaxPinnedServers < 0 {
		k.add(top("max_pinned_servers"), c.MaxPinnedServers == f.MaxPinnedServers, nil, "must not be negative (0: half of each pool)")
	}
	if !c.PoolMode.Valid() {
		k.add(top("pool_mode"), c.PoolMode == f.PoolMode, nil, "%q is not one of session, transaction, statement", c.PoolMode)
	}
	if c.PoolSize < 1 {
		k.add(top(poolSizeKey), c.PoolSize == f.PoolSize, nil, "must be at least 1")
	}
	if c.QueryWaitTimeout < 0 {
		k.add(top("query_wait_timeout"), c.QueryWaitTimeout == f.QueryWaitTimeout, nil, "must not be negative")
	}
	if c.QueryWaitNotify < 0 {
		k.add(top("query_wait_notify"), c.QueryWaitNotify == f.QueryWaitNotify, nil, "must not be negative")
	}
	if c.MaxDBConnections < 0 {
		k.add(top("max_db_connections"), c.MaxDBConnections == f.MaxDBConnections, nil, "must not be negative (0 means unlimited)")
	}
	if c.MaxUserConnections < 0 {
		k.add(top("max_user_connections"), c.MaxUserConnections == f.MaxUserConnections, nil, "must not be negative (0 means unlimited)")
	}
	if c.ServerConnectTimeout <= 0 {
		k.add(top("server_connect_timeout"), c.ServerConnectTimeout == f.ServerConnectTimeout, nil, "must be positive")
	}
	if c.ServerLoginRetry <= 0 {
		k.add(top("server_login_retry"), c.ServerLoginRetry == f.ServerLoginRetry, nil, "must be positive")
	}
	if c.MaxPreparedStatements < 0 {
		k.add(top("max_prepared_statements"), c.MaxPreparedStatements == f.MaxPreparedStatements, nil, "must not be negative (0 turns tracking off)")
	}
	if c.MaxClientConn < 1 {
		k.add(top("max_client_conn"), c.MaxClientConn == f.MaxClientConn, nil, "must be at least 1")
	}
	if c.MaxLoginConn < 1 {
		k.add(top("max_login_conn"), c.MaxLoginConn == f.MaxLoginConn, nil, "must be at least 1")
	}
	if c.MaxLoginConnPerAddr < 0 {
		k.add(top("max_login_conn_per_addr"), c.MaxLoginConnPerAddr == f.MaxLoginConnPerAddr, nil, "must not be negative (0: no per-address bound)")
	}
	if !c.Auth.Valid() {
		k.add(top("auth_type"), c.Auth == f.Auth, nil, "%q is not one of trust, passthrough, scram-sha-256, md5, plain, cert, hba", c.Auth)
	}
	c.checkTLS(k, f)
	c.checkServerTLS(k, f)
	if c.Auth.UsesAuthFile() && c.AuthFile == "" && c.AuthUser == "" {
		k.add(top("auth_file"), c.AuthFile == f.AuthFile, top("auth_type"), "auth_type %s checks clients against auth_file; set it", c.Auth)
	}
	c.checkAuthQuery(k, f)
	if c.Auth == AuthHBA && c.AuthHBAFile == "" {
		k.add(top("auth_hba_file"), c.AuthHBAFile == f.AuthHBAFile, top("auth_type"), "auth_type hba takes its rules from auth_hba_file; set it")
	}
	if c.TakeoverSocket != "" && len(c.TakeoverSocket) > maxSocketPath {
		k.add(top("takeover_socket"), c.TakeoverSocket == f.TakeoverSocket, nil,
			"too long: a socket's path must fit in %d bytes", maxSocketPath)
	}
	if c.UnixSocketDir != "" && len(c.UnixSocketDir)+len("/.s.PGVALVE.65535") > maxSocketPath {
		k.add(top("unix_socket_dir"), c.UnixSocketDir == f.UnixSocketDir, nil,
			"too long: the socket's path must fit in %d bytes", maxSocketPath)
	}
	if c.MaxMessageSize < MinMessageSize || c.MaxMessageSize > MaxMessageSizeLimit {
		k.add(top("max_message_size"), c.MaxMessageSize == f.MaxMessageSize, nil,
			"must be between %d and %d", MinMessageSize, MaxMessageSizeLimit)
	}
	for _, d := range []struct {
		key       string
		val, file time.Duration
	}{
		{"client_login_timeout", c.ClientLoginTimeout, f.ClientLoginTimeout},
		{"shutdown_timeout", c.ShutdownTimeout, f.ShutdownTimeout},
		{"server_idle_timeout", c.ServerIdleTimeout, f.ServerIdleTimeout},
		{"server_lifetime", c.ServerLifetime, f.ServerLifetime},
		{"server_check_delay", c.ServerCheckDelay, f.ServerCheckDelay},
		{"health_check_period", c.HealthCheckPeriod, f.HealthCheckPeriod},
		{"max_replica_lag", c.MaxReplicaLag, f.MaxReplicaLag},
		{"client_park_delay", c.ClientParkDelay, f.ClientParkDelay},
		{"reserve_pool_timeout", c.ReservePoolTimeout, f.ReservePoolTimeout},
		{"idle_transaction_timeout", c.IdleTransactionTimeout, f.IdleTransactionTimeout},
		{"query_timeout", c.QueryTimeout, f.QueryTimeout},
		{"client_idle_timeout", c.ClientIdleTimeout, f.ClientIdleTimeout},
	} {
		if d.val < 0 {
			k.add(top(d.key), d.val == d.file, nil, "must not be negative")
		}
	}
	if c.MinPoolSize < 0 {
		k.add(top("min_pool_size"), c.MinPoolSize == f.MinPoolSize, nil, "must not be negative")
	} else if c.MinPoolSize > c.PoolSize && c.PoolSize >= 1 {
		k.add(top("min_pool_size"), c.MinPoolSize == f.MinPoolSize, nil, "must not exceed %s (%d)", poolSizeKey, c.PoolSize)
	}
	if c.ReservePoolSize < 0 {
		k.add(top("reserve_pool_size"), c.ReservePoolSize == f.ReservePoolSize, nil, "must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		k.add(top("log_level"), c.LogLevel == f.LogLevel, nil, "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		k.add(top("log_format"), c.LogFormat == f.LogFormat, nil, "%q is not one of text, json", c.LogFormat)
	}
	if c.LogSlowQuery < 0 {
		k.add(top("log_slow_query"), c.LogSlowQuery == f.LogSlowQuery, nil, "must not be negative (0 turns it off)")
	}
	if c.MetricsListen != "" {
		if err := checkListen(c.MetricsListen); err != nil {
			k.add(top("metrics_listen"), c.MetricsListen == f.MetricsListen, nil, "%v", err)
		}
	}
	for _, l := range []struct {
		key         string
		names, file []string
	}{{"admin_users", c.AdminUsers, f.AdminUsers}, {"stats_users", c.StatsUsers, f.StatsUsers}} {
		if slices.Contains(l.names, "") {
			k.add(top(l.key), slices.Equal(l.names, l.file), nil, "user names must not be empty")
		}
	}

	for _, name := range slices.Sorted(maps.Keys(c.Databases)) {
		d := c.Databases[name]
		fd, inFile := f.Databases[name]
		at := toml.Key{"databases", name}
		field := func(key string) toml.Key { return toml.Key{"databases", name, key} }
		if name == "" {
			k.add(at, inFile, nil, "database name must not be empty")
		}
		if d.Upstream == "" {
			k.add(at, inFile && fd.Upstream == "", nil, "upstream is required")
		} else if _, err := parseUpstream(d.Upstream); err != nil {
			k.add(field("upstream"), inFile && d.Upstream == fd.Upstream, at, "%v", err)
		}
		if d.PoolMode != "" && !d.PoolMode.Valid() {
			k.add(field("pool_mode"), inFile && d.PoolMode == fd.PoolMode, at,
				"%q is not one of session, transaction, statement", d.PoolMode)
		}
		if d.SessionState != "" && !d.SessionState.Valid() {
			k.add(field("session_state"), inFile && d.SessionState == fd.SessionState, at,
				"%q is not one of track, pin-all, off", d.SessionState)
		}
		if d.PoolSize < 0 {
			k.add(field("pool_size"), inFile && d.PoolSize == fd.PoolSize, at, "must be at least 1 (or 0 to inherit pool_size)")
		}
		if len(d.Hosts) > MaxHosts {
			k.add(field("host"), inFile && len(d.Hosts) == len(fd.Hosts), at, "%d hosts; at most %d", len(d.Hosts), MaxHosts)
		}
		if v := d.TargetSessionAttrs; v != "" {
			if err := oneOf("target_session_attrs", v, TargetSessionAttrs); err != nil {
				k.add(field("target_session_attrs"), inFile && v == fd.TargetSessionAttrs, at, "%v", err)
			}
		}
		if v := d.LoadBalanceHosts; v != "" {
			if err := oneOf("load_balance_hosts", v, LoadBalanceHosts); err != nil {
				k.add(field("load_balance_hosts"), inFile && v == fd.LoadBalanceHosts, at, "%v", err)
			}
		}
	}
	c.checkUsers(k, f)
	c.checkPeers(k, f)
	return k.probs
}

// maxSocketPath is the longest unix socket path the smallest sun_path
// (macOS, BSD: 104 bytes with its NUL) takes.
const maxSocketPath = 103

// checkListen accepts host:port with a numeric port; port 0 picks a free
// port, which tests rely on.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q is not host:port: %s", s, ae.Err)
		}
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// checkAuthQuery checks auth_user's companions: a query to run, and a
// database it can run in.
func (c Config) checkAuthQuery(k *checker, f Config) {
	top := func(key string) toml.Key { return toml.Key{key} }
	if c.AuthUser == "" {
		return
	}
	if strings.TrimSpace(c.AuthQuery) == "" {
		k.add(top("auth_query"), c.AuthQuery == f.AuthQuery, top("auth_user"), "auth_user %q runs auth_query: it must not be empty", c.AuthUser)
	}
	if _, routed := c.Databases[c.AuthDBName]; c.AuthDBName != "" && !routed && c.Upstream == "" {
		k.add(top("auth_dbname"), c.AuthDBName == f.AuthDBName, nil,
			"%q is neither a [databases] route nor served by the global upstream (which is not set)", c.AuthDBName)
	}
}

// checkTLS checks client_tls_*: a known mode, and the files it needs.
// Whether the files hold a usable key pair is checked when they are
// loaded (internal/tlsconf).
func (c Config) checkTLS(k *checker, f Config) {
	top := func(key string) toml.Key { return toml.Key{key} }
	t, ft := c.ClientTLS, f.ClientTLS
	if !slices.Contains(SSLModes, t.SSLMode) {
		k.add(top("client_tls_sslmode"), t.SSLMode == ft.SSLMode, nil, "%q is not one of %s", t.SSLMode, strings.Join(SSLModes, ", "))
		return
	}
	if t.On() && (t.KeyFile == "" || t.CertFile == "") {
		k.add(top("client_tls_cert_file"), t.CertFile == ft.CertFile, top("client_tls_sslmode"),
			"client_tls_sslmode %s needs client_tls_key_file and client_tls_cert_file", t.SSLMode)
	}
	if t.VerifyPeer() && t.CAFile == "" {
		k.add(top("client_tls_ca_file"), t.CAFile == ft.CAFile, top("client_tls_sslmode"),
			"client_tls_sslmode %s checks client certificates against client_tls_ca_file; set it", t.SSLMode)
	}
	if c.Auth == AuthCert && !t.VerifyPeer() {
		k.add(top("auth_type"), c.Auth == f.Auth, nil,
			"auth_type cert takes the user from a verified client certificate: it needs client_tls_sslmode verify-ca or verify-full")
	}
	if c.Auth == AuthPlain && !t.Required() {
		k.add(top("auth_type"), c.Auth == f.Auth, nil,
			"auth_type plain sends passwords in cleartext: it needs client_tls_sslmode require or stricter")
	}
}

// checkServerTLS checks server_tls_*: a known mode, a CA to check the
// server against in the verify modes, and a client certificate given
// whole or not at all. libpq would read ~/.postgresql/root.crt and fail
// without it; pgvalve reads no default file, so the verify modes need
// server_tls_ca_file named (a file, or "system" for the system's roots).
func (c Config) checkServerTLS(k *checker, f Config) {
	top := func(key string) toml.Key { return toml.Key{key} }
	t, ft := c.ServerTLS, f.ServerTLS
	if !slices.Contains(SSLModes, t.SSLMode) {
		k.add(top("server_tls_sslmode"), t.SSLMode == ft.SSLMode, nil, "%q is not one of %s", t.SSLMode, strings.Join(SSLModes, ", "))
		return
	}
	if t.VerifyPeer() && t.CAFile == "" {
		k.add(top("server_tls_ca_file"), t.CAFile == ft.CAFile, top("server_tls_sslmode"),
			"server_tls_sslmode %s checks the server's certificate against server_tls_ca_file; set it (a PEM file, or %q for the system's roots)",
			t.SSLMode, SystemRoots)
	}
	if (t.KeyFile == "") != (t.CertFile == "") {
		key, fileValue := "server_tls_key_file", t.KeyFile == ft.KeyFile
		if t.CertFile == "" {
			key, fileValue = "server_tls_cert_file", t.CertFile == ft.CertFile
		}
		k.add(top(key), fileValue, top("server_tls_sslmode"),
			"pgvalve's client certificate for servers needs both server_tls_key_file and server_tls_cert_file")
	}
}
