package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDefaultHasDocumentedValues(t *testing.T) {
	want := Config{
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
		ServerIdleTimeout:     600 * time.Second, // PgBouncer's defaults
		ServerLifetime:        3600 * time.Second,
		ServerCheckDelay:      30 * time.Second,
		HealthCheckPeriod:     5 * time.Second,
		ClientParkDelay:       time.Second,
		ReservePoolTimeout:    5 * time.Second,
		MaxClientConn:         1000,
		MaxLoginConn:          2000,
		MaxLoginConnPerAddr:   200,
		UnixSocketDir:         "/tmp", // PgBouncer's
		UnixSocketMode:        0o777,
		Auth:                  AuthTrust,
		// PgBouncer's, as is the TLS below.
		AuthQuery:          "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin",
		ClientTLS:          TLS{SSLMode: "disable", Protocols: "secure", Ciphers: "default"},
		ServerTLS:          TLS{SSLMode: "prefer", Protocols: "secure", Ciphers: "default"}, // libpq's too
		ServerResetQuery:   "DISCARD ALL",
		MaxMessageSize:     1<<30 - 1,
		ClientLoginTimeout: 60 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		LogLevel:           "info",
		LogFormat:          "text",
		LogQueryText:       true,
		Databases:          map[string]Database{},
		Users:              map[string]User{},
		Peers:              map[int]Peer{},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Default() = %+v\nwant %+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestDefaultReturnsIndependentMaps(t *testing.T) {
	a := Default()
	a.Databases["x"] = Database{Name: "x"}
	if len(Default().Databases) != 0 {
		t.Fatal("mutating one Default() leaked into the next")
	}
}

func TestParseOfEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.src = nil
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v, want defaults", cfg)
	}
}

func TestParseReadsEveryKey(t *testing.T) {
	const doc = `
listen = "0.0.0.0:7432"
upstream = "postgres://app@db.internal/app"
pool_mode = "transaction"
peer_id = 1
load_balance_hosts = "random"
pool_size = 5
query_wait_timeout = "1m"
query_wait_notify = "2s"
max_db_connections = 30
max_user_connections = 40
max_prepared_statements = 0
server_connect_timeout = 3
server_login_retry = "250ms"
max_client_conn = 50
auth = "passthrough"
max_login_conn = 300
max_login_conn_per_addr = 20
auth_file = "/etc/pgvalve/userlist.txt"
auth_user = "pgvalve_auth"
auth_query = "SELECT usename, passwd FROM lookup($1)"
auth_dbname = "main"
auth_hba_file = "/etc/pgvalve/hba.conf"
unix_socket_dir = "/run/pgvalve"
unix_socket_mode = "0770"
client_tls_sslmode = "disable"
client_tls_key_file = "server.key"
client_tls_cert_file = "server.crt"
client_tls_ca_file = "ca.crt"
client_tls_protocols = "tlsv1.3"
client_tls_ciphers = "TLS_AES_128_GCM_SHA256"
server_tls_sslmode = "verify-full"
server_tls_key_file = "client.key"
server_tls_cert_file = "client.crt"
server_tls_ca_file = "root.crt"
server_tls_protocols = "tlsv1.2,tlsv1.3"
server_tls_ciphers = "default"
server_reset_query = ""
max_message_size = 65536
client_login_timeout = 0
shutdown_timeout = 2.5
log_level = "debug"
log_format = "json"
log_query_text = false
log_slow_query = "1s"
admin_users = "admin"
stats_users = ["grafana", "exporter"]
metrics_listen = "127.0.0.1:9187"
server_idle_timeout = "90s"
server_lifetime = 7200
server_check_delay = "0"
health_check_period = "750ms"
max_replica_lag = "2s"
client_park_delay = "250ms"
min_pool_size = 2
reserve_pool_size = 3
reserve_pool_timeout = "1.5s"
idle_transaction_timeout = "10s"
query_timeout = "30s"
client_idle_timeout = 600

[databases.reports]
upstream = "postgresql://ro@replica:5433/reports"
host = ["replica1:5433", { host = "[::1]", weight = 3 }]
target_session_attrs = "prefer-standby"
load_balance_hosts = "disable"
pool_mode = "statement"
pool_size = 2

[databases.main]
upstream = "postgres://main/main"

[users.reporter]
pool_mode = "session"
max_user_connections = 7

[peers.2]
host = "pgvalve-2.fleet"
port = 7432
`
	cfg, err := Parse("pgvalve.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg.src = nil
	want := Config{
		Listen:               "0.0.0.0:7432",
		Upstream:             "postgres://app@db.internal/app",
		PoolMode:             PoolTransaction,
		LoadBalanceHosts:     "random",
		SessionState:         StateTrack,
		PoolSize:             5,
		QueryWaitTimeout:     time.Minute,
		QueryWaitNotify:      2 * time.Second,
		MaxDBConnections:     30,
		MaxUserConnections:   40,
		ServerConnectTimeout: 3 * time.Second,
		ServerLoginRetry:     250 * time.Millisecond,
		MaxClientConn:        50,
		MaxLoginConn:         300,
		MaxLoginConnPerAddr:  20,
		Auth:                 AuthPassthrough,
		AuthFile:             "/etc/pgvalve/userlist.txt",
		AuthUser:             "pgvalve_auth",
		AuthQuery:            "SELECT usename, passwd FROM lookup($1)",
		AuthDBName:           "main",
		AuthHBAFile:          "/etc/pgvalve/hba.conf",
		UnixSocketDir:        "/run/pgvalve",
		UnixSocketMode:       0o770,
		ClientTLS: TLS{SSLMode: "disable", KeyFile: "server.key", CertFile: "server.crt", CAFile: "ca.crt",
			Protocols: "tlsv1.3", Ciphers: "TLS_AES_128_GCM_SHA256"},
		ServerTLS: TLS{SSLMode: "verify-full", KeyFile: "client.key", CertFile: "client.crt", CAFile: "root.crt",
			Protocols: "tlsv1.2,tlsv1.3", Ciphers: "default"},
		ServerResetQuery:       "",
		MaxMessageSize:         65536,
		ClientLoginTimeout:     0,
		ShutdownTimeout:        2500 * time.Millisecond,
		LogLevel:               "debug",
		LogFormat:              "json",
		LogSlowQuery:           time.Second,
		AdminUsers:             []string{"admin"},
		StatsUsers:             []string{"grafana", "exporter"},
		MetricsListen:          "127.0.0.1:9187",
		ServerIdleTimeout:      90 * time.Second,
		ServerLifetime:         2 * time.Hour,
		ServerCheckDelay:       0,
		HealthCheckPeriod:      750 * time.Millisecond,
		MaxReplicaLag:          2 * time.Second,
		ClientParkDelay:        250 * time.Millisecond,
		MinPoolSize:            2,
		ReservePoolSize:        3,
		ReservePoolTimeout:     1500 * time.Millisecond,
		IdleTransactionTimeout: 10 * time.Second,
		QueryTimeout:           30 * time.Second,
		ClientIdleTimeout:      10 * time.Minute,
		Databases: map[string]Database{
			"reports": {Name: "reports", Upstream: "postgresql://ro@replica:5433/reports", PoolMode: PoolStatement, PoolSize: 2, Line: 62,
				Hosts:              []Address{{Host: "replica1", Port: 5433}, {Host: "::1", Port: 5432, Weight: 3}},
				TargetSessionAttrs: "prefer-standby", LoadBalanceHosts: "disable"},
			"main": {Name: "main", Upstream: "postgres://main/main", Line: 70},
		},
		Users:  map[string]User{"reporter": {Name: "reporter", PoolMode: PoolSession, MaxUserConnections: 7, Line: 73}},
		PeerID: 1,
		Peers:  map[int]Peer{2: {ID: 2, Host: "pgvalve-2.fleet", Port: 7432, Line: 77}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestPoolForResolvesRoutes(t *testing.T) {
	withGlobal := Default()
	withGlobal.Upstream = "postgres://global/x"
	withGlobal.PoolMode = PoolTransaction
	withGlobal.PoolSize = 7
	withGlobal.Databases = map[string]Database{
		"own":      {Name: "own", Upstream: "postgres://own/own", PoolMode: PoolStatement, SessionState: StateOff, PoolSize: 3, Line: 4},
		"inherits": {Name: "inherits", Upstream: "postgres://inh/inh", Line: 9},
	}
	noGlobal := withGlobal
	noGlobal.Upstream = ""

	tests := []struct {
		name   string
		cfg    Config
		db     string
		want   Database
		wantOK bool
	}{
		{"route overrides mode and size", withGlobal, "own",
			Database{Name: "own", Upstream: "postgres://own/own", PoolMode: PoolStatement, SessionState: StateOff, PoolSize: 3, Line: 4}, true},
		{"route inherits mode and size", withGlobal, "inherits",
			Database{Name: "inherits", Upstream: "postgres://inh/inh", PoolMode: PoolTransaction, SessionState: StateTrack, PoolSize: 7, Line: 9}, true},
		{"unrouted name uses global upstream", withGlobal, "other",
			Database{Name: "other", Upstream: "postgres://global/x", PoolMode: PoolTransaction, SessionState: StateTrack, PoolSize: 7}, true},
		{"route still wins without global", noGlobal, "own",
			Database{Name: "own", Upstream: "postgres://own/own", PoolMode: PoolStatement, SessionState: StateOff, PoolSize: 3, Line: 4}, true},
		{"unrouted name without global has no route", noGlobal, "other", Database{}, false},
		{"names are case-sensitive", noGlobal, "OWN", Database{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.cfg.PoolFor(tt.db)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("PoolFor(%q) = %+v, %v; want %+v, %v", tt.db, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPoolModeValidAcceptsOnlyKnownModes(t *testing.T) {
	for _, m := range []PoolMode{PoolSession, PoolTransaction, PoolStatement} {
		if !m.Valid() {
			t.Errorf("%q.Valid() = false", m)
		}
	}
	for _, m := range []PoolMode{"", "Session", "sesion"} {
		if m.Valid() {
			t.Errorf("%q.Valid() = true", m)
		}
	}
}

func TestLoadReadsFileAndNamesItInErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("pool_size = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("\npool_size = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(good)
	if err != nil || cfg.PoolSize != 3 {
		t.Fatalf("Load(good) = %d, %v", cfg.PoolSize, err)
	}
	_, err = Load(bad)
	if want := bad + ":2: pool_size: must be at least 1"; err == nil || err.Error() != want {
		t.Fatalf("Load(bad) error = %v, want %q", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("Load(missing) error = %v", err)
	}
}
