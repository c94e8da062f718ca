package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A PgBouncer file as operators write one: comments of both kinds, a
// quoted database name, the * fallback, a multi-host route, a unix socket
// host, TLS, PgBouncer's units, and an %include.
const bouncerINI = `;; pgbouncer.ini
[databases]
app = host=10.0.0.5 port=5433 dbname=app_prod user=app password='s3 cr\'et' pool_size=30 pool_mode=session
"my reports" = host=replica1,replica2 dbname=reports client_encoding=UTF8
local = host=/var/run/postgresql dbname=app
* = host=10.0.0.9

[pgbouncer]
listen_addr = *
listen_port = 7432
# seconds, as PgBouncer counts them
query_wait_timeout = 45
server_idle_timeout = 120
reserve_pool_timeout = 2.5
pool_mode = transaction
default_pool_size = 25
max_client_conn = 5000
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
admin_users = admin, ops
unix_socket_dir =
unix_socket_mode = 0770
logfile = /var/log/pgbouncer/pgbouncer.log
pidfile = /var/run/pgbouncer/pgbouncer.pid
server_reset_query = DISCARD ALL
max_packet_size = 1048576
%include INCLUDED

[users]
reporter = pool_mode=session max_user_connections=4
`

func writeINI(t *testing.T, main, included string) string {
	t.Helper()
	dir := t.TempDir()
	inc := filepath.Join(dir, "more.ini")
	if err := os.WriteFile(inc, []byte(included), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(main, "INCLUDED", inc)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAPgBouncerFileCarriesOverWithPgBouncersMeaning(t *testing.T) {
	path := writeINI(t, bouncerINI, "max_db_connections = 80\nserver_tls_sslmode = require\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, "0.0.0.0:7432"},
		{"query_wait_timeout", cfg.QueryWaitTimeout, 45 * time.Second},
		{"server_idle_timeout", cfg.ServerIdleTimeout, 2 * time.Minute},
		{"reserve_pool_timeout", cfg.ReservePoolTimeout, 2500 * time.Millisecond},
		{"pool_mode", cfg.PoolMode, PoolTransaction},
		{"default_pool_size", cfg.PoolSize, 25},
		{"max_client_conn", cfg.MaxClientConn, 5000},
		{"auth_type", cfg.Auth, AuthSCRAM},
		{"admin_users", strings.Join(cfg.AdminUsers, ","), "admin,ops"},
		{"unix_socket_dir", cfg.UnixSocketDir, ""},
		{"unix_socket_mode", cfg.UnixSocketMode, os.FileMode(0o770)},
		{"max_packet_size", cfg.MaxMessageSize, 1 << 20},
		{"the included max_db_connections", cfg.MaxDBConnections, 80},
		{"the included server_tls_sslmode", cfg.ServerTLS.SSLMode, "require"},
		{"* fallback", cfg.Upstream, "postgres://10.0.0.9:5432/"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	app := cfg.Databases["app"]
	up, err := cfg.Target(app)
	if err != nil {
		t.Fatal(err)
	}
	if up.User != "app" || up.Password != `s3 cr'et` || up.Database != "app_prod" || up.Hosts[0].String() != "10.0.0.5:5433" ||
		app.PoolSize != 30 || app.PoolMode != PoolSession {
		t.Errorf("route app: %+v, pool_size %d, pool_mode %s", up, app.PoolSize, app.PoolMode)
	}
	reports, err := cfg.Target(cfg.Databases["my reports"])
	if err != nil || len(reports.Hosts) != 2 || reports.Hosts[1].String() != "replica2:5432" || reports.Params["client_encoding"] != "UTF8" {
		t.Errorf("route \"my reports\": %+v, %v; want two hosts and client_encoding", reports, err)
	}
	local, err := cfg.Target(cfg.Databases["local"])
	if err != nil || local.Params["host"] != "/var/run/postgresql" {
		t.Errorf("route local: %+v, %v; want the unix socket directory", local, err)
	}
	if u := cfg.Users["reporter"]; u.PoolMode != PoolSession || u.MaxUserConnections != 4 || cfg.UserMaxConnections("reporter") != 4 ||
		cfg.UserMaxConnections("app") != cfg.MaxUserConnections || cfg.UserPoolMode("reporter", app) != PoolSession {
		t.Errorf("[users] reporter: %+v", u)
	}
	notices := strings.Join(cfg.Notices(), "\n")
	for _, want := range []string{path + ":23: logfile: ignored", path + ":24: pidfile: ignored"} {
		if !strings.Contains(notices, want) {
			t.Errorf("notices %q lack %q", notices, want)
		}
	}
}

func TestAPgBouncerFilesProblemsNameTheirFileAndLine(t *testing.T) {
	main := "[databases]\n" +
		"a = host=h max_db_connections=5\n" + // 2
		"[pgbouncer]\n" +
		"pool_mode = sometimes\n" + // 4
		"auth_type = pam\n" + // 5
		"listen_addr = 127.0.0.1,::1\n" + // 6
		"no_such_key = 1\n" + // 7
		"default_pool_size = many\n" + // 8
		"so_reuseport = 1\n" + // 9
		"%include INCLUDED\n" +
		"[users]\n" +
		"bob = pool_mode=sometimes\n" + // 12
		"eve = max_user_connections=5 reserve_pool=1\n" // 13
	path := writeINI(t, main, "\nquery_timeout = soon\n")
	_, err := Load(path)
	if err == nil {
		t.Fatal("a broken file loaded")
	}
	inc := filepath.Join(filepath.Dir(path), "more.ini")
	for _, want := range []string{
		path + ":2: a: max_db_connections per database is not supported",
		path + ":5: auth_type: auth_type \"pam\" is not supported",
		path + ":6: listen_addr: listen_addr \"127.0.0.1,::1\" lists several addresses",
		path + ":7: no_such_key: unknown PgBouncer key",
		path + ":8: default_pool_size: \"many\" is not an integer",
		path + ":9: so_reuseport: \"1\" is not supported",
		inc + ":2: query_timeout: \"soon\" is not a number of seconds",
		path + ":13: eve: reserve_pool per user is not supported",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
	// A value PgBouncer takes but pgvalve's validation refuses is named at
	// its own line too.
	_, err = Load(writeINI(t, "[pgbouncer]\nlisten_port = 6432\npool_mode = sometimes\n[users]\nbob = pool_mode=sometimes\n", ""))
	if err == nil || !strings.Contains(err.Error(), ":3: pool_mode:") || !strings.Contains(err.Error(), ":5: users.bob.pool_mode:") {
		t.Fatalf("pool_mode = sometimes: %v; want errors at lines 3 and 5", err)
	}
}

func TestAnIncludeLoopIsAnErrorNotAHang(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loop.ini")
	if err := os.WriteFile(path, []byte("[pgbouncer]\n%include "+path+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("a file that includes itself: %v; want an error saying the nesting is too deep", err)
	}
}

// convert's TOML, read back, is the same configuration.
func TestConvertedTOMLReadsBackAsTheSameConfig(t *testing.T) {
	path := writeINI(t, bouncerINI, "max_db_connections = 80\n")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ConvertINI(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "# "+path+":23: logfile: ignored") {
		t.Errorf("the TOML does not say what was ignored:\n%s", out)
	}
	back, err := Parse("converted.toml", []byte(out))
	if err != nil {
		t.Fatalf("the converted TOML does not parse: %v\n%s", err, out)
	}
	orig, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Diff(orig, back); len(diff) != 0 {
		t.Fatalf("the converted TOML differs from the PgBouncer file: %v", diff)
	}
	if !slices.Equal(orig.AdminUsers, back.AdminUsers) {
		t.Fatalf("admin_users %v, read back %v", orig.AdminUsers, back.AdminUsers)
	}
}

func TestOnlyAFileWithAPgbouncerSectionIsReadAsPgBouncers(t *testing.T) {
	for doc, want := range map[string]bool{
		"[pgbouncer]\nlisten_port = 6432\n":   true,
		"  [ PgBouncer ]  ; main\n":           true,
		"[databases]\na = host=x\n":           false,
		"listen = \"127.0.0.1:6432\"\n":       false,
		"[databases.pgbouncer]\nupstream=1\n": false,
	} {
		if got := IsINI([]byte(doc)); got != want {
			t.Errorf("IsINI(%q) = %v; want %v", doc, got, want)
		}
	}
}

// Setting names are case-insensitive and a later line wins; database names
// keep their case, so App and app are two routes.
func TestLaterLinesWinAndDatabaseNamesKeepTheirCase(t *testing.T) {
	cfg, err := Load(writeINI(t, "[databases]\nApp = host=a\napp = host=b\n[pgbouncer]\nPOOL_MODE = session\npool_mode = transaction\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PoolMode != PoolTransaction {
		t.Errorf("pool_mode %s; want the later line's, transaction", cfg.PoolMode)
	}
	if len(cfg.Databases) != 2 || cfg.Databases["App"].Upstream == "" || cfg.Databases["app"].Upstream == "" {
		t.Errorf("routes %v; want App and app", cfg.Databases)
	}
}
