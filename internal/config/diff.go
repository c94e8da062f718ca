package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Change is one setting that differs between a running configuration and
// a reloaded one.
type Change struct {
	Key      string // as in the file: "pool_size", "databases.reports.upstream"
	Old, New string // as a log shows them: URLs without their password; "" for a route that did not exist
	// Restart: a running pgvalve cannot apply it; the old value stays in
	// force until pgvalve is restarted.
	Restart bool
}

func (c Change) String() string {
	s := fmt.Sprintf("%s: %s → %s", c.Key, orNone(c.Old), orNone(c.New))
	if c.Restart {
		s += " (needs a restart)"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// setting is one top-level key and whether only a restart can change it:
// the listening addresses are bound once, and clients already connected were
// admitted under the auth mode they met.
type setting struct {
	key     string
	get     func(Config) any
	restart bool
}

var settings = []setting{
	{"listen", func(c Config) any { return c.Listen }, true},
	{"auth_type", func(c Config) any { return c.Auth }, true},
	{"auth_file", func(c Config) any { return c.AuthFile }, false},
	{"auth_user", func(c Config) any { return c.AuthUser }, false},
	{"auth_query", func(c Config) any { return fmt.Sprintf("%q", c.AuthQuery) }, false},
	{"auth_dbname", func(c Config) any { return c.AuthDBName }, false},
	{"auth_hba_file", func(c Config) any { return c.AuthHBAFile }, false},
	{"unix_socket_dir", func(c Config) any { return c.UnixSocketDir }, true},
	{"unix_socket_mode", func(c Config) any { return fmt.Sprintf("%04o", uint32(c.UnixSocketMode)) }, true},
	{"takeover_socket", func(c Config) any { return c.TakeoverSocket }, true},
	{"client_tls_sslmode", func(c Config) any { return c.ClientTLS.SSLMode }, false},
	{"client_tls_key_file", func(c Config) any { return c.ClientTLS.KeyFile }, false},
	{"client_tls_cert_file", func(c Config) any { return c.ClientTLS.CertFile }, false},
	{"client_tls_ca_file", func(c Config) any { return c.ClientTLS.CAFile }, false},
	{"client_tls_protocols", func(c Config) any { return c.ClientTLS.Protocols }, false},
	{"client_tls_ciphers", func(c Config) any { return c.ClientTLS.Ciphers }, false},
	{"server_tls_sslmode", func(c Config) any { return c.ServerTLS.SSLMode }, false},
	{"server_tls_key_file", func(c Config) any { return c.ServerTLS.KeyFile }, false},
	{"server_tls_cert_file", func(c Config) any { return c.ServerTLS.CertFile }, false},
	{"server_tls_ca_file", func(c Config) any { return c.ServerTLS.CAFile }, false},
	{"server_tls_protocols", func(c Config) any { return c.ServerTLS.Protocols }, false},
	{"server_tls_ciphers", func(c Config) any { return c.ServerTLS.Ciphers }, false},
	{"upstream", func(c Config) any { return c.Upstream }, false},
	{"pool_mode", func(c Config) any { return c.PoolMode }, false},
	{"load_balance_hosts", func(c Config) any { return c.LoadBalanceHosts }, false},
	{"session_state", func(c Config) any { return c.SessionState }, false},
	{"max_pinned_servers", func(c Config) any { return c.MaxPinnedServers }, false},
	{"pool_size", func(c Config) any { return c.PoolSize }, false},
	{"min_pool_size", func(c Config) any { return c.MinPoolSize }, false},
	{"reserve_pool_size", func(c Config) any { return c.ReservePoolSize }, false},
	{"reserve_pool_timeout", func(c Config) any { return c.ReservePoolTimeout }, false},
	{"max_client_conn", func(c Config) any { return c.MaxClientConn }, false},
	{"max_login_conn", func(c Config) any { return c.MaxLoginConn }, false},
	{"max_login_conn_per_addr", func(c Config) any { return c.MaxLoginConnPerAddr }, false},
	{"max_db_connections", func(c Config) any { return c.MaxDBConnections }, false},
	{"max_user_connections", func(c Config) any { return c.MaxUserConnections }, false},
	{"max_message_size", func(c Config) any { return c.MaxMessageSize }, false},
	{"max_prepared_statements", func(c Config) any { return c.MaxPreparedStatements }, false},
	{"query_wait_timeout", func(c Config) any { return c.QueryWaitTimeout }, false},
	{"query_wait_notify", func(c Config) any { return c.QueryWaitNotify }, false},
	{"query_timeout", func(c Config) any { return c.QueryTimeout }, false},
	{"idle_transaction_timeout", func(c Config) any { return c.IdleTransactionTimeout }, false},
	{"client_idle_timeout", func(c Config) any { return c.ClientIdleTimeout }, false},
	{"client_login_timeout", func(c Config) any { return c.ClientLoginTimeout }, false},
	{"server_connect_timeout", func(c Config) any { return c.ServerConnectTimeout }, false},
	{"server_login_retry", func(c Config) any { return c.ServerLoginRetry }, false},
	{"server_idle_timeout", func(c Config) any { return c.ServerIdleTimeout }, false},
	{"server_lifetime", func(c Config) any { return c.ServerLifetime }, false},
	{"server_check_delay", func(c Config) any { return c.ServerCheckDelay }, false},
	{"health_check_period", func(c Config) any { return c.HealthCheckPeriod }, false},
	{"max_replica_lag", func(c Config) any { return c.MaxReplicaLag }, false},
	{"client_park_delay", func(c Config) any { return c.ClientParkDelay }, true},
	{"server_reset_query", func(c Config) any { return fmt.Sprintf("%q", c.ServerResetQuery) }, false},
	{"shutdown_timeout", func(c Config) any { return c.ShutdownTimeout }, false},
	{"log_level", func(c Config) any { return c.LogLevel }, false},
	{"log_format", func(c Config) any { return c.LogFormat }, true},
	{"log_query_text", func(c Config) any { return c.LogQueryText }, false},
	{"log_slow_query", func(c Config) any { return c.LogSlowQuery }, false},
	{"admin_users", func(c Config) any { return strings.Join(c.AdminUsers, ",") }, false},
	{"stats_users", func(c Config) any { return strings.Join(c.StatsUsers, ",") }, false},
	{"metrics_listen", func(c Config) any { return c.MetricsListen }, true},
	// Keys issued before a change would name the old id.
	{"peer_id", func(c Config) any { return c.PeerID }, true},
}

// Diff lists every setting and route that differs from old to new, in a
// fixed order: top-level settings, then routes by name, users by name and
// peers by id.
func Diff(old, new Config) []Change {
	var out []Change
	for _, s := range settings {
		if o, n := fmt.Sprint(s.get(old)), fmt.Sprint(s.get(new)); o != n {
			if s.key == "upstream" {
				o, n = redactPair(o, n)
			}
			out = append(out, Change{Key: s.key, Old: o, New: n, Restart: s.restart})
		}
	}
	names := slices.Collect(maps.Keys(old.Databases))
	for n := range new.Databases {
		if _, had := old.Databases[n]; !had {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, diffRoute(name, old.Databases, new.Databases)...)
	}
	out = append(out, diffUsers(old.Users, new.Users)...)
	return append(out, diffPeers(old.Peers, new.Peers)...)
}

func diffRoute(name string, old, new map[string]Database) []Change {
	key := "databases." + name
	o, hadOld := old[name]
	n, hasNew := new[name]
	switch {
	case !hasNew:
		return []Change{{Key: key, Old: redact(o.Upstream)}}
	case !hadOld:
		return []Change{{Key: key, New: redact(n.Upstream)}}
	}
	var out []Change
	if o.Upstream != n.Upstream {
		old, new := redactPair(o.Upstream, n.Upstream)
		out = append(out, Change{Key: key + ".upstream", Old: old, New: new})
	}
	if !slices.Equal(o.Hosts, n.Hosts) {
		out = append(out, Change{Key: key + ".host", Old: hostList(o.Hosts), New: hostList(n.Hosts)})
	}
	if o.TargetSessionAttrs != n.TargetSessionAttrs {
		out = append(out, Change{Key: key + ".target_session_attrs", Old: o.TargetSessionAttrs, New: n.TargetSessionAttrs})
	}
	if o.LoadBalanceHosts != n.LoadBalanceHosts {
		out = append(out, Change{Key: key + ".load_balance_hosts", Old: o.LoadBalanceHosts, New: n.LoadBalanceHosts})
	}
	if o.SessionState != n.SessionState {
		out = append(out, Change{Key: key + ".session_state", Old: string(o.SessionState), New: string(n.SessionState)})
	}
	if o.PoolMode != n.PoolMode {
		out = append(out, Change{Key: key + ".pool_mode", Old: string(o.PoolMode), New: string(n.PoolMode)})
	}
	if o.PoolSize != n.PoolSize {
		out = append(out, Change{Key: key + ".pool_size", Old: fmt.Sprint(o.PoolSize), New: fmt.Sprint(n.PoolSize)})
	}
	return out
}

// Reloaded is what a running pgvalve applies when asked to load next: next,
// with every restart-only setting kept as running has it, and the changes.
func Reloaded(running, next Config) (Config, []Change) {
	changes := Diff(running, next)
	next.Listen = running.Listen
	next.UnixSocketDir, next.UnixSocketMode = running.UnixSocketDir, running.UnixSocketMode
	next.TakeoverSocket = running.TakeoverSocket
	next.Auth = running.Auth
	next.LogFormat = running.LogFormat
	next.MetricsListen = running.MetricsListen
	next.ClientParkDelay = running.ClientParkDelay
	next.PeerID = running.PeerID
	return next, changes
}

// Item is one setting as the admin console's SHOW CONFIG lists it.
type Item struct {
	Key, Value, Default string
	// Changeable: a reload applies a new value without a restart.
	Changeable bool
}

// Items lists every top-level setting of c with its default, in the order
// Diff reports them.
func (c Config) Items() []Item {
	def := Default()
	out := make([]Item, 0, len(settings))
	for _, s := range settings {
		v, d := fmt.Sprint(s.get(c)), fmt.Sprint(s.get(def))
		if s.key == "upstream" {
			v = redact(v)
		}
		out = append(out, Item{Key: s.key, Value: v, Default: d, Changeable: !s.restart})
	}
	return out
}

// redactPair shows two different upstream URLs without their passwords,
// saying so when only the password differs.
func redactPair(old, new string) (string, string) {
	o, n := redact(old), redact(new)
	if o == n && o != "" {
		n += " (new password)"
	}
	return o, n
}

// redact shows an upstream URL without its password.
func redact(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)" // never echo what may hold a password
	}
	return u.Redacted()
}

// hostList shows a route's host key as the comma list PgBouncer writes.
func hostList(hs []Address) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.String()
		if h.Weight > 0 {
			parts[i] += fmt.Sprintf(" (weight %d)", h.Weight)
		}
	}
	return strings.Join(parts, ",")
}
