package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// problem is one configuration error, kept structured until join formats it
// so that all of them can be sorted by line.
type problem struct {
	fromFile bool   // the value came from the file named in join
	file     string // or from this one (a PgBouncer file's %include)
	line     int    // 1-based file line; 0 = unknown
	key      string // key path the problem is about; "" for syntax errors
	msg      string
}

// join sorts problems by line (unlocated first, otherwise in the order they
// were found) and joins them into one error; nil if there are none.
func join(name string, probs []problem) error {
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].line < probs[j].line })
	errs := make([]error, 0, len(probs))
	for _, p := range probs {
		var b strings.Builder
		file := name
		if p.file != "" {
			file = p.file
		}
		switch {
		case p.fromFile && p.line > 0:
			fmt.Fprintf(&b, "%s:%d: ", file, p.line)
		case p.fromFile:
			fmt.Fprintf(&b, "%s: ", file)
		}
		if p.key != "" {
			b.WriteString(p.key)
			b.WriteString(": ")
		}
		b.WriteString(p.msg)
		errs = append(errs, errors.New(b.String()))
	}
	return errors.Join(errs...)
}

// decoder turns the generic TOML tree into a Config. It checks key names and
// value types itself instead of using toml's struct decoding, which matches
// field names case-insensitively and stops at the first type error; walking
// the tree lets every problem be reported, each with its line.
type decoder struct {
	lines map[string]int
	probs []problem
}

func (d *decoder) fail(path toml.Key, format string, args ...any) {
	k := path.String()
	d.probs = append(d.probs, problem{fromFile: true, line: d.lines[k], key: k, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) unknown(path toml.Key) {
	k := path.String()
	d.probs = append(d.probs, problem{fromFile: true, line: d.lines[k], msg: fmt.Sprintf("unknown key %q", k)})
}

// decode parses data on top of Default. ok is false when the TOML itself
// does not parse; then only the syntax error is returned.
func decode(name string, data []byte) (cfg Config, probs []problem, ok bool) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, []problem{{fromFile: true, line: pe.Position.Line, msg: pe.Message}}, false
		}
		return Config{}, []problem{{fromFile: true, msg: err.Error()}}, false
	}

	d := &decoder{lines: keyLines(string(data))}
	cfg = Default()
	poolSizeKey := ""
	for _, key := range slices.Sorted(maps.Keys(tree)) {
		val, path := tree[key], toml.Key{key}
		switch key {
		case "listen":
			d.str(path, val, &cfg.Listen)
		case "upstream":
			d.str(path, val, &cfg.Upstream)
		case "load_balance_hosts":
			d.str(path, val, &cfg.LoadBalanceHosts)
		case "pool_mode":
			d.str(path, val, (*string)(&cfg.PoolMode))
		case "pool_size", "default_pool_size":
			if poolSizeKey != "" {
				// Both spellings; sorted iteration makes this pool_size.
				d.fail(path, "conflicts with its alias %s; set only one", poolSizeKey)
				continue
			}
			poolSizeKey = key
			d.int(path, val, &cfg.PoolSize)
		case "query_wait_timeout":
			d.duration(path, val, &cfg.QueryWaitTimeout)
		case "query_wait_notify":
			d.duration(path, val, &cfg.QueryWaitNotify)
		case "max_client_conn":
			d.int(path, val, &cfg.MaxClientConn)
		case "max_login_conn":
			d.int(path, val, &cfg.MaxLoginConn)
		case "max_login_conn_per_addr":
			d.int(path, val, &cfg.MaxLoginConnPerAddr)
		case "max_db_connections":
			d.int(path, val, &cfg.MaxDBConnections)
		case "max_user_connections":
			d.int(path, val, &cfg.MaxUserConnections)
		case "server_connect_timeout":
			d.duration(path, val, &cfg.ServerConnectTimeout)
		case "server_login_retry":
			d.duration(path, val, &cfg.ServerLoginRetry)
		case "server_idle_timeout":
			d.duration(path, val, &cfg.ServerIdleTimeout)
		case "server_lifetime":
			d.duration(path, val, &cfg.ServerLifetime)
		case "server_check_delay":
			d.duration(path, val, &cfg.ServerCheckDelay)
		case "health_check_period":
			d.duration(path, val, &cfg.HealthCheckPeriod)
		case "max_replica_lag":
			d.duration(path, val, &cfg.MaxReplicaLag)
		case "client_park_delay":
			d.duration(path, val, &cfg.ClientParkDelay)
		case "min_pool_size":
			d.int(path, val, &cfg.MinPoolSize)
		case "reserve_pool_size":
			d.int(path, val, &cfg.ReservePoolSize)
		case "reserve_pool_timeout":
			d.duration(path, val, &cfg.ReservePoolTimeout)
		case "idle_transaction_timeout":
			d.duration(path, val, &cfg.IdleTransactionTimeout)
		case "query_timeout":
			d.duration(path, val, &cfg.QueryTimeout)
		case "client_idle_timeout":
			d.duration(path, val, &cfg.ClientIdleTimeout)
		case "max_prepared_statements":
			d.int(path, val, &cfg.MaxPreparedStatements)
		case "auth", "auth_type":
			if key == "auth" { // today's name: problems point at its line
				d.lines["auth_type"] = d.lines["auth"]
			}
			d.str(path, val, (*string)(&cfg.Auth))
			if cfg.Auth == "password" {
				cfg.Auth = AuthPlain
			}
		case "auth_file":
			d.str(path, val, &cfg.AuthFile)
		case "session_state":
			d.str(path, val, (*string)(&cfg.SessionState))
		case "max_pinned_servers":
			d.int(path, val, &cfg.MaxPinnedServers)
		case "auth_user":
			d.str(path, val, &cfg.AuthUser)
		case "auth_query":
			d.str(path, val, &cfg.AuthQuery)
		case "auth_dbname":
			d.str(path, val, &cfg.AuthDBName)
		case "auth_hba_file":
			d.str(path, val, &cfg.AuthHBAFile)
		case "unix_socket_dir":
			d.str(path, val, &cfg.UnixSocketDir)
		case "unix_socket_mode":
			d.mode(path, val, &cfg.UnixSocketMode)
		case "takeover_socket":
			d.str(path, val, &cfg.TakeoverSocket)
		case "client_tls_sslmode":
			d.str(path, val, &cfg.ClientTLS.SSLMode)
		case "client_tls_key_file":
			d.str(path, val, &cfg.ClientTLS.KeyFile)
		case "client_tls_cert_file":
			d.str(path, val, &cfg.ClientTLS.CertFile)
		case "client_tls_ca_file":
			d.str(path, val, &cfg.ClientTLS.CAFile)
		case "client_tls_protocols":
			d.str(path, val, &cfg.ClientTLS.Protocols)
		case "client_tls_ciphers":
			d.str(path, val, &cfg.ClientTLS.Ciphers)
		case "server_tls_sslmode":
			d.str(path, val, &cfg.ServerTLS.SSLMode)
		case "server_tls_key_file":
			d.str(path, val, &cfg.ServerTLS.KeyFile)
		case "server_tls_cert_file":
			d.str(path, val, &cfg.ServerTLS.CertFile)
		case "server_tls_ca_file":
			d.str(path, val, &cfg.ServerTLS.CAFile)
		case "server_tls_protocols":
			d.str(path, val, &cfg.ServerTLS.Protocols)
		case "server_tls_ciphers":
			d.str(path, val, &cfg.ServerTLS.Ciphers)
		case "server_reset_query":
			d.str(path, val, &cfg.ServerResetQuery)
		case "max_message_size":
			d.int(path, val, &cfg.MaxMessageSize)
		case "client_login_timeout":
			d.duration(path, val, &cfg.ClientLoginTimeout)
		case "shutdown_timeout":
			d.duration(path, val, &cfg.ShutdownTimeout)
		case "log_level":
			d.str(path, val, &cfg.LogLevel)
		case "log_format":
			d.str(path, val, &cfg.LogFormat)
		case "log_query_text":
			d.bool(path, val, &cfg.LogQueryText)
		case "log_slow_query":
			d.duration(path, val, &cfg.LogSlowQuery)
		case "admin_users":
			d.names(path, val, &cfg.AdminUsers)
		case "stats_users":
			d.names(path, val, &cfg.StatsUsers)
		case "metrics_listen":
			d.str(path, val, &cfg.MetricsListen)
		case "databases":
			d.databases(path, val, cfg.Databases)
		case "users":
			d.users(path, val, cfg.Users)
		case "peer_id":
			d.int(path, val, &cfg.PeerID)
		case "peers":
			d.peers(path, val, cfg.Peers)
		default:
			d.unknown(path)
		}
	}
	if poolSizeKey == "" {
		poolSizeKey = "pool_size"
	}

	file := cfg
	file.Databases, file.Users, file.Peers = maps.Clone(cfg.Databases), maps.Clone(cfg.Users), maps.Clone(cfg.Peers)
	cfg.src = &source{name: name, lines: d.lines, poolSizeKey: poolSizeKey, file: file}
	return cfg, d.probs, true
}

// eachTable walks a table of named tables (what names them, as
// "[databases.NAME] routes") in name order, calling field once for each
// table with key "" and then for each of its keys, with the table's line;
// a value that is not a table is reported.
func (d *decoder) eachTable(path toml.Key, val any, what string, field func(name string, line int, key string, kp toml.Key, val any)) {
	tables, ok := val.(map[string]any)
	if !ok {
		d.fail(path, "expected a table of %s, got %s", what, typeName(val))
		return
	}
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		tPath := append(slices.Clone(path), name)
		fields, ok := tables[name].(map[string]any)
		if !ok {
			d.fail(tPath, "expected a table, got %s", typeName(tables[name]))
			continue
		}
		line := d.lines[tPath.String()]
		field(name, line, "", nil, nil) // the table itself, even without keys
		for _, key := range slices.Sorted(maps.Keys(fields)) {
			field(name, line, key, append(slices.Clone(tPath), key), fields[key])
		}
	}
}

func (d *decoder) databases(path toml.Key, val any, into map[string]Database) {
	d.eachTable(path, val, "[databases.NAME] routes", func(name string, line int, key string, kp toml.Key, val any) {
		db, seen := into[name]
		if !seen {
			db = Database{Name: name, Line: line}
		}
		switch key {
		case "":
		case "upstream":
			d.str(kp, val, &db.Upstream)
		case "host":
			d.hosts(kp, val, &db.Hosts)
		case "target_session_attrs":
			d.str(kp, val, &db.TargetSessionAttrs)
		case "load_balance_hosts":
			d.str(kp, val, &db.LoadBalanceHosts)
		case "pool_mode":
			d.str(kp, val, (*string)(&db.PoolMode))
		case "session_state":
			d.str(kp, val, (*string)(&db.SessionState))
		case "pool_size":
			d.int(kp, val, &db.PoolSize)
		default:
			d.unknown(kp)
		}
		into[name] = db
	})
}

func (d *decoder) str(path toml.Key, val any, dst *string) {
	s, ok := val.(string)
	if !ok {
		d.fail(path, "expected string, got %s", typeName(val))
		return
	}
	*dst = s
}

func (d *decoder) int(path toml.Key, val any, dst *int) {
	n, ok := val.(int64)
	if !ok {
		d.fail(path, "expected integer, got %s", typeName(val))
		return
	}
	if n < math.MinInt || n > math.MaxInt {
		d.fail(path, "%d is out of range", n)
		return
	}
	*dst = int(n)
}

func (d *decoder) bool(path toml.Key, val any, dst *bool) {
	b, ok := val.(bool)
	if !ok {
		d.fail(path, "expected boolean, got %s", typeName(val))
		return
	}
	*dst = b
}

// mode accepts file permissions as an octal string ("0770", as PgBouncer
// writes them) or a TOML integer (0o770).
func (d *decoder) mode(path toml.Key, val any, dst *os.FileMode) {
	var n uint64
	switch v := val.(type) {
	case string:
		var err error
		if n, err = strconv.ParseUint(v, 8, 32); err != nil {
			d.fail(path, "%q is not an octal mode such as \"0770\"", v)
			return
		}
	case int64:
		if v < 0 {
			d.fail(path, "must not be negative")
			return
		}
		n = uint64(v)
	default:
		d.fail(path, "expected an octal string such as \"0770\", got %s", typeName(val))
		return
	}
	if n > 0o777 {
		d.fail(path, "%#o is not a permission mode (at most 0777; write it as a string, \"0770\")", n)
		return
	}
	*dst = os.FileMode(n)
}

// ParseMode reads an octal permission mode as unix_socket_mode takes it.
func ParseMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not an octal mode such as 0770", s)
	}
	return os.FileMode(n), nil
}

// names accepts an array of strings or, as PgBouncer writes user lists, one
// comma-separated string.
func (d *decoder) names(path toml.Key, val any, dst *[]string) {
	switch v := val.(type) {
	case string:
		*dst = SplitNames(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				d.fail(path, "expected an array of strings, found %s in it", typeName(e))
				return
			}
			out = append(out, strings.TrimSpace(s))
		}
		*dst = out
	default:
		d.fail(path, "expected an array of strings or a comma-separated string, got %s", typeName(val))
	}
}

// SplitNames splits a comma-separated list of names, dropping blanks.
func SplitNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// duration accepts a Go duration string ("20s", "500ms") or, as PgBouncer
// does, a plain number of seconds (integer or float).
func (d *decoder) duration(path toml.Key, val any, dst *time.Duration) {
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	switch v := val.(type) {
	case string:
		dur, err := time.ParseDuration(v)
		if err != nil {
			d.fail(path, "invalid duration %q (want e.g. \"20s\", \"500ms\" or a number of seconds)", v)
			return
		}
		*dst = dur
	case int64:
		if v > maxSeconds || v < -maxSeconds {
			d.fail(path, "%d seconds is out of range", v)
			return
		}
		*dst = time.Duration(v) * time.Second
	case float64:
		if math.IsNaN(v) || math.Abs(v) > float64(maxSeconds) {
			d.fail(path, "%v seconds is out of range", v)
			return
		}
		*dst = time.Duration(math.Round(v * float64(time.Second)))
	default:
		d.fail(path, "expected duration string or number of seconds, got %s", typeName(val))
	}
}

// typeName names a decoded TOML value's type in TOML's own terms.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// hosts reads a route's host key: PgBouncer's comma list in a string
// ("h1:5432,h2"), or a list whose items are such strings or tables with a
// host and a weight ({ host = "h1:5432", weight = 2 }).
func (d *decoder) hosts(path toml.Key, val any, dst *[]Address) {
	var out []Address
	add := func(s string, weight int64) bool {
		for _, h := range strings.Split(s, ",") {
			a, err := ParseAddress(strings.TrimSpace(h))
			if err != nil {
				d.fail(path, "%v", err)
				return false
			}
			a.Weight = int(weight)
			out = append(out, a)
		}
		return true
	}
	switch v := val.(type) {
	case string:
		if !add(v, 0) {
			return
		}
	case []any:
		for _, item := range v {
			switch it := item.(type) {
			case string:
				if !add(it, 0) {
					return
				}
			case map[string]any:
				if !d.hostTable(path, it, add) {
					return
				}
			default:
				d.fail(path, "expected a host string or a { host, weight } table, got %s", typeName(item))
				return
			}
		}
	default:
		d.fail(path, "expected a string of hosts or a list, got %s", typeName(val))
		return
	}
	*dst = out
}

// hostTable reads { host = "h:port", weight = N }.
func (d *decoder) hostTable(path toml.Key, t map[string]any, add func(string, int64) bool) bool {
	host, ok := t["host"].(string)
	if !ok {
		d.fail(path, "a host table needs host = \"name:port\"")
		return false
	}
	var weight int64
	if w, set := t["weight"]; set {
		n, isInt := w.(int64)
		if !isInt || n < 1 || n > 1000 {
			d.fail(path, "weight of %s: want an integer from 1 to 1000", host)
			return false
		}
		weight = n
	}
	for k := range t {
		if k != "host" && k != "weight" {
			d.fail(path, "unknown key %q in a host table", k)
			return false
		}
	}
	if strings.Contains(host, ",") {
		d.fail(path, "a host table names one host; got %q", host)
		return false
	}
	return add(host, weight)
}
