package config

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// carry is how one [pgbouncer] key carries over to pgvalve.
type carry struct {
	to   string // pgvalve's key; "" when it does not carry over
	kind byte   // 's' string, 'i' integer, 'd' seconds, 'm' octal mode
	// For a key that does not carry over: ok says which values mean what
	// pgvalve does anyway (ignored with a notice, or silently when
	// ok holds the value); any other value is an error, since ignoring
	// it would change behaviour. why says what pgvalve does instead.
	ok  []string
	why string
}

// bouncerKeys are PgBouncer's [pgbouncer] keys (1.18 to 1.23). Those
// with a pgvalve key of the same meaning carry over; the README's "Coming
// from PgBouncer" table lists the others.
var bouncerKeys = map[string]carry{
	"pool_mode": {to: "pool_mode", kind: 's'}, "default_pool_size": {to: "pool_size", kind: 'i'},
	"min_pool_size": {to: "min_pool_size", kind: 'i'}, "reserve_pool_size": {to: "reserve_pool_size", kind: 'i'},
	"reserve_pool_timeout": {to: "reserve_pool_timeout", kind: 'd'}, "max_client_conn": {to: "max_client_conn", kind: 'i'},
	"max_db_connections": {to: "max_db_connections", kind: 'i'}, "max_user_connections": {to: "max_user_connections", kind: 'i'},
	"max_prepared_statements": {to: "max_prepared_statements", kind: 'i'},
	"server_reset_query":      {to: "server_reset_query", kind: 's'}, "server_check_delay": {to: "server_check_delay", kind: 'd'},
	"server_lifetime": {to: "server_lifetime", kind: 'd'}, "server_idle_timeout": {to: "server_idle_timeout", kind: 'd'},
	"server_connect_timeout": {to: "server_connect_timeout", kind: 'd'}, "server_login_retry": {to: "server_login_retry", kind: 'd'},
	"client_login_timeout": {to: "client_login_timeout", kind: 'd'}, "query_timeout": {to: "query_timeout", kind: 'd'},
	"query_wait_timeout": {to: "query_wait_timeout", kind: 'd'}, "client_idle_timeout": {to: "client_idle_timeout", kind: 'd'},
	"idle_transaction_timeout": {to: "idle_transaction_timeout", kind: 'd'},
	"auth_type":                {to: "auth_type", kind: 's'}, "auth_file": {to: "auth_file", kind: 's'},
	"auth_hba_file": {to: "auth_hba_file", kind: 's'}, "auth_user": {to: "auth_user", kind: 's'},
	"auth_query": {to: "auth_query", kind: 's'}, "auth_dbname": {to: "auth_dbname", kind: 's'},
	"admin_users": {to: "admin_users", kind: 's'}, "stats_users": {to: "stats_users", kind: 's'},
	"unix_socket_dir": {to: "unix_socket_dir", kind: 's'}, "unix_socket_mode": {to: "unix_socket_mode", kind: 'm'},
	"max_packet_size": {to: "max_message_size", kind: 'i'}, "peer_id": {to: "peer_id", kind: 'i'},
	"client_tls_sslmode": {to: "client_tls_sslmode", kind: 's'}, "client_tls_key_file": {to: "client_tls_key_file", kind: 's'},
	"client_tls_cert_file": {to: "client_tls_cert_file", kind: 's'}, "client_tls_ca_file": {to: "client_tls_ca_file", kind: 's'},
	"client_tls_protocols": {to: "client_tls_protocols", kind: 's'}, "client_tls_ciphers": {to: "client_tls_ciphers", kind: 's'},
	"server_tls_sslmode": {to: "server_tls_sslmode", kind: 's'}, "server_tls_key_file": {to: "server_tls_key_file", kind: 's'},
	"server_tls_cert_file": {to: "server_tls_cert_file", kind: 's'}, "server_tls_ca_file": {to: "server_tls_ca_file", kind: 's'},
	"server_tls_protocols": {to: "server_tls_protocols", kind: 's'}, "server_tls_ciphers": {to: "server_tls_ciphers", kind: 's'},

	"logfile":            {why: "pgvalve logs to stderr (systemd's journal, or redirect it)"},
	"pidfile":            {why: "pgvalve does not write a pid file (systemd tracks it)"},
	"syslog":             {ok: []string{"0"}, why: "pgvalve logs to stderr"},
	"syslog_ident":       {why: "pgvalve logs to stderr"},
	"syslog_facility":    {why: "pgvalve logs to stderr"},
	"log_connections":    {why: "pgvalve logs logins at debug level"},
	"log_disconnections": {why: "pgvalve logs disconnections at debug level"},
	"log_pooler_errors":  {why: "pgvalve always tells clients its errors"},
	"log_stats":          {why: "pgvalve's statistics are in SHOW STATS and /metrics"},
	"stats_period":       {why: "pgvalve's statistics are computed continuously"},
	"verbose":            {why: "use log_level"},
	"user":               {why: "run pgvalve as that user (systemd's User=)"},
	"service_name":       {why: "Windows only"}, "job_name": {why: "Windows only"},
	"conffile":       {why: "the file named on the command line is the one read and reloaded"},
	"listen_backlog": {why: "the kernel's default backlog is used"},
	"pkt_buf":        {why: "pgvalve sizes its buffers itself"}, "sbuf_loopcnt": {why: "pgvalve's relay is not a loop"},
	"tcp_defer_accept": {why: "not used"}, "tcp_socket_buffer": {why: "the kernel's socket buffers are used"},
	"tcp_keepalive": {why: "Go's TCP keepalive is on"}, "tcp_keepcnt": {why: "Go's TCP keepalive is used"},
	"tcp_keepidle": {why: "Go's TCP keepalive is used"}, "tcp_keepintvl": {why: "Go's TCP keepalive is used"},
	"tcp_user_timeout": {why: "not used"},
	"dns_max_ttl":      {why: "Go's resolver is used at each login"}, "dns_nxdomain_ttl": {why: "Go's resolver is used"},
	"dns_zone_check_period": {why: "Go's resolver is used"}, "resolv_conf": {why: "Go's resolver reads the system's"},
	"server_check_query":   {why: "pgvalve checks an idle server with an empty query"},
	"server_round_robin":   {why: "pgvalve reuses the server used last, which keeps the fewest servers warm"},
	"client_tls_ecdhcurve": {why: "Go's TLS chooses the curves"}, "client_tls_dheparams": {why: "Go's TLS has no finite-field DH"},
	"client_tls13_ciphers": {why: "Go's TLS 1.3 suites are fixed"}, "server_tls13_ciphers": {why: "Go's TLS 1.3 suites are fixed"},
	"autodb_idle_timeout":       {why: "routes to the global upstream keep their pools"},
	"suspend_timeout":           {why: "pgvalve has no SUSPEND"},
	"ignore_startup_parameters": {why: "pgvalve accepts every startup parameter and passes it on"},
	"track_extra_parameters":    {why: "pgvalve tracks every parameter the server reports"},
	"server_reset_query_always": {ok: []string{"0"}, why: "pgvalve resets servers as its session_state says"},
	"disable_pqexec":            {ok: []string{"0"}, why: "pgvalve runs multi-statement simple queries as PostgreSQL does"},
	"server_fast_close":         {ok: []string{"0"}, why: "pgvalve closes a server at its next safe point"},
	"application_name_add_host": {ok: []string{"0"}, why: "pgvalve passes application_name unchanged"},
	"unix_socket_group":         {ok: []string{""}, why: "pgvalve does not change the socket's group"},
	"so_reuseport":              {ok: []string{"0"}, why: "pgvalve uses every core in one process"},
}

// tomlDoc is the TOML a PgBouncer file becomes, each line with the entry
// it came from (zero for lines that came from none).
type tomlDoc struct {
	lines  []string
	origin []iniEntry
}

func (d *tomlDoc) add(from iniEntry, format string, args ...any) {
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
	d.origin = append(d.origin, from)
}

func (d *tomlDoc) text() string { return strings.Join(d.lines, "\n") + "\n" }

// bouncer turns a PgBouncer file's entries into TOML, with a notice for
// every key ignored and a problem for every one that cannot be honoured.
type bouncer struct {
	top, dbs, users, peers tomlDoc
	notices                []string
	probs                  []problem
	listen                 struct {
		addr, port string
		from       iniEntry
	}
}

func (b *bouncer) fail(e iniEntry, format string, args ...any) {
	b.probs = append(b.probs, problem{fromFile: true, file: e.file, line: e.line, key: e.key, msg: fmt.Sprintf(format, args...)})
}

func (b *bouncer) notice(e iniEntry, format string, args ...any) {
	b.notices = append(b.notices, fmt.Sprintf("%s:%d: %s: ", e.file, e.line, e.key)+fmt.Sprintf(format, args...))
}

// convert reads entries in order; a later entry of a key wins, as in
// PgBouncer.
func (b *bouncer) convert(entries []iniEntry) tomlDoc {
	// Setting names are case-insensitive, as in PgBouncer; database and
	// user names are not.
	id := func(e iniEntry) string {
		if e.section == "pgbouncer" {
			return e.section + "\x00" + strings.ToLower(e.key)
		}
		return e.section + "\x00" + e.key
	}
	last := map[string]int{}
	for i, e := range entries {
		last[id(e)] = i
	}
	for i, e := range entries {
		if last[id(e)] != i {
			continue
		}
		switch e.section {
		case "pgbouncer":
			b.setting(e)
		case "databases":
			b.database(e)
		case "users":
			b.user(e)
		case "peers":
			b.peer(e)
		default:
			b.fail(e, "unknown section [%s]", e.section)
		}
	}
	if b.listen.addr != "" || b.listen.port != "" {
		b.listenKey()
	}
	out := b.top
	for _, d := range []tomlDoc{b.dbs, b.users, b.peers} {
		out.lines, out.origin = append(out.lines, d.lines...), append(out.origin, d.origin...)
	}
	return out
}

// setting carries one [pgbouncer] key over, or says why not.
func (b *bouncer) setting(e iniEntry) {
	key := strings.ToLower(e.key)
	switch key {
	case "listen_addr":
		b.listen.addr, b.listen.from = e.value, e
		return
	case "listen_port":
		b.listen.port = e.value
		if b.listen.from.file == "" {
			b.listen.from = e
		}
		return
	}
	c, known := bouncerKeys[key]
	switch {
	case !known:
		b.fail(e, "unknown PgBouncer key")
	case c.to == "" && (len(c.ok) == 0 || slices.Contains(c.ok, e.value)):
		if len(c.ok) == 0 {
			b.notice(e, "ignored: %s", c.why)
		}
	case c.to == "":
		b.fail(e, "%q is not supported (%s); remove the key or set it to %q", e.value, c.why, c.ok[0])
	default:
		b.value(e, c)
	}
}

// value writes e's value as c's pgvalve key, typed.
func (b *bouncer) value(e iniEntry, c carry) {
	v := e.value
	switch c.kind {
	case 'i':
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			b.fail(e, "%q is not an integer", v)
			return
		}
		b.top.add(e, "%s = %s", c.to, v)
	case 'd':
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			b.fail(e, "%q is not a number of seconds", v)
			return
		}
		b.top.add(e, "%s = %s", c.to, v)
	case 'm':
		b.top.add(e, "%s = %s", c.to, tomlString(v))
	default:
		if c.to == "auth_type" && (v == "any" || v == "pam" || v == "ldap") {
			b.fail(e, "auth_type %q is not supported (pgvalve has trust, plain, md5, scram-sha-256, cert, hba and passthrough)", v)
			return
		}
		b.top.add(e, "%s = %s", c.to, tomlString(v))
	}
}

// listenKey joins listen_addr and listen_port into pgvalve's listen.
func (b *bouncer) listenKey() {
	addr, port, from := b.listen.addr, b.listen.port, b.listen.from
	if port == "" {
		port = "6432"
	}
	if strings.Contains(addr, ",") {
		b.fail(from, "listen_addr %q lists several addresses; pgvalve listens on one (use * for all)", addr)
		return
	}
	switch addr {
	case "*":
		addr = "0.0.0.0"
	case "":
		addr = "127.0.0.1"
	}
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	b.top.add(from, "listen = %s", tomlString(addr+":"+port))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// database carries one [databases] line over: "*" becomes the global
// upstream, any other name a route.
func (b *bouncer) database(e iniEntry) {
	kv, order, err := connString(e.value)
	if err != nil {
		b.fail(e, "%v", err)
		return
	}
	up, extra, ok := b.upstreamURL(e, kv, order)
	if !ok {
		return
	}
	if e.key == "*" {
		if kv["dbname"] != "" || len(extra) > 0 {
			b.fail(e, "the * fallback with dbname, pool_size or pool_mode is not supported; give the database its own line")
			return
		}
		b.top.add(e, "upstream = %s", tomlString(up))
		return
	}
	b.dbs.add(e, "[databases.%s]", tomlString(e.key))
	b.dbs.add(e, "upstream = %s", tomlString(up))
	for _, x := range extra {
		b.dbs.add(e, "%s", x)
	}
}

// upstreamURL builds the postgres URL of a [databases] connection string,
// and the route keys it sets besides.
func (b *bouncer) upstreamURL(e iniEntry, kv map[string]string, order []string) (string, []string, bool) {
	u := url.URL{Scheme: "postgres", Path: "/" + cmp.Or(kv["dbname"], e.key)}
	if e.key == "*" {
		u.Path = "/"
	}
	q := url.Values{}
	var extra []string
	for _, k := range order {
		v := kv[k]
		switch k {
		case "dbname", "host", "port", "user", "password":
		case "pool_size":
			if _, err := strconv.Atoi(v); err != nil {
				b.fail(e, "pool_size %q is not an integer", v)
				return "", nil, false
			}
			extra = append(extra, "pool_size = "+v)
		case "pool_mode":
			extra = append(extra, "pool_mode = "+tomlString(v))
		case "client_encoding", "datestyle", "timezone", "application_name":
			q.Set(k, v)
		case "auth_user", "connect_query", "max_db_connections", "min_pool_size", "reserve_pool", "auth_dbname", "load_balance_hosts":
			b.fail(e, "%s per database is not supported; set what [pgbouncer] can, or remove it", k)
			return "", nil, false
		default:
			b.fail(e, "unknown connection parameter %q", k)
			return "", nil, false
		}
	}
	host, port := kv["host"], cmp.Or(kv["port"], "5432")
	switch {
	case host == "" || strings.HasPrefix(host, "/"):
		// PgBouncer's default, and any path, is a unix socket.
		q.Set("host", cmp.Or(host, "/tmp"))
		u.Host = "localhost:" + port
	default:
		hosts := strings.Split(host, ",")
		for i, h := range hosts {
			if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
				h = "[" + h + "]"
			}
			hosts[i] = h + ":" + port
		}
		u.Host = strings.Join(hosts, ",")
	}
	if user := kv["user"]; user != "" {
		u.User = url.User(user)
		if pw, ok := kv["password"]; ok {
			u.User = url.UserPassword(user, pw)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), extra, true
}

// user carries one [users] line over: its pool_mode and
// max_user_connections, for the pools of that server user.
func (b *bouncer) user(e iniEntry) {
	b.table(e, &b.users, "users", "user", []tableKey{{"pool_mode", 's', ""}, {"max_user_connections", 'i', ""}})
}

// peer carries one [peers] line over: "ID = host=... port=...", PgBouncer's
// connection string, becomes [peers.ID]. pool_size (PgBouncer's bound on
// cancels in flight to the peer) is dropped with a notice: pgvalve
// forwards each cancel on a connection of its own.
func (b *bouncer) peer(e iniEntry) {
	b.table(e, &b.peers, "peers", "peer", []tableKey{{"host", 's', ""}, {"port", 'i', ""},
		{"pool_size", 0, "pool_size ignored: pgvalve forwards each cancel request on a connection of its own"}})
}

// tableKey is a key of a section whose lines are connection strings: a
// string ('s') or an integer ('i') carried over, or (kind 0) dropped with
// the notice.
type tableKey struct {
	name   string
	kind   byte
	notice string
}

// table carries one line of such a section ([users], [peers]) over as the
// TOML table [section.KEY] in doc; a key not in keys is an error naming
// those that are, and nothing of the line is carried then.
func (b *bouncer) table(e iniEntry, doc *tomlDoc, section, what string, keys []tableKey) {
	kv, order, err := connString(e.value)
	if err != nil {
		b.fail(e, "%v", err)
		return
	}
	lines := []string{fmt.Sprintf("[%s.%s]", section, tomlString(e.key))}
	for _, k := range order {
		i := slices.IndexFunc(keys, func(tk tableKey) bool { return tk.name == k })
		if i < 0 {
			names := make([]string, 0, len(keys))
			for _, tk := range keys {
				if tk.kind != 0 {
					names = append(names, tk.name)
				}
			}
			b.fail(e, "%s per %s is not supported (%s are)", k, what, strings.Join(names, " and "))
			return
		}
		switch v := kv[k]; keys[i].kind {
		case 's':
			lines = append(lines, k+" = "+tomlString(v))
		case 'i':
			if _, err := strconv.Atoi(v); err != nil {
				b.fail(e, "%s %q is not an integer", k, v)
				return
			}
			lines = append(lines, k+" = "+v)
		default:
			b.notice(e, "%s", keys[i].notice)
		}
	}
	for _, l := range lines {
		doc.add(e, "%s", l)
	}
}
