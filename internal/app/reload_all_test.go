package app_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/certs"
)

// liveChanges gives every setting a reload applies a new, valid value,
// one key at a time; TestEveryLiveKeyIsChangedUnderLoad fails for a live
// key missing here, so a new one cannot be left out.
func liveChanges(t *testing.T) map[string]func(*config.Config) {
	t.Helper()
	ca := certs.NewCA(t, "reload")
	server, other := ca.Server(t, "pgvalve"), ca.Server(t, "pgvalve-2") // the key's change needs a pair of its own
	hba := filepath.Join(t.TempDir(), "hba.conf")
	if err := os.WriteFile(hba, []byte("host all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := userlist(t, entry("someone", "md5"+"0123456789abcdef0123456789abcdef"))
	return map[string]func(*config.Config){
		"auth_file":     func(c *config.Config) { c.AuthFile = users },
		"auth_user":     func(c *config.Config) { c.AuthUser = "someone" },
		"auth_query":    func(c *config.Config) { c.AuthQuery = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1" },
		"auth_dbname":   func(c *config.Config) { c.AuthDBName = "postgres" },
		"auth_hba_file": func(c *config.Config) { c.AuthHBAFile = hba },
		"client_tls_sslmode": func(c *config.Config) {
			c.ClientTLS.SSLMode = "allow"
			c.ClientTLS.CertFile, c.ClientTLS.KeyFile = server.Cert, server.Key
		},
		"client_tls_key_file":      func(c *config.Config) { c.ClientTLS.CertFile, c.ClientTLS.KeyFile = other.Cert, other.Key },
		"client_tls_cert_file":     func(c *config.Config) { c.ClientTLS.CertFile, c.ClientTLS.KeyFile = server.Cert, server.Key },
		"client_tls_ca_file":       func(c *config.Config) { c.ClientTLS.CAFile = ca.File },
		"client_tls_protocols":     func(c *config.Config) { c.ClientTLS.Protocols = "tlsv1.3" },
		"client_tls_ciphers":       func(c *config.Config) { c.ClientTLS.Ciphers = "TLS_AES_128_GCM_SHA256" },
		"server_tls_sslmode":       func(c *config.Config) { c.ServerTLS.SSLMode = "disable" },
		"server_tls_key_file":      func(c *config.Config) { c.ServerTLS.CertFile, c.ServerTLS.KeyFile = other.Cert, other.Key },
		"server_tls_cert_file":     func(c *config.Config) { c.ServerTLS.CertFile, c.ServerTLS.KeyFile = server.Cert, server.Key },
		"server_tls_ca_file":       func(c *config.Config) { c.ServerTLS.CAFile = ca.File },
		"server_tls_protocols":     func(c *config.Config) { c.ServerTLS.Protocols = "tlsv1.3" },
		"server_tls_ciphers":       func(c *config.Config) { c.ServerTLS.Ciphers = "TLS_AES_128_GCM_SHA256" },
		"upstream":                 func(c *config.Config) { c.Upstream += "&application_name=reloaded" },
		"pool_mode":                func(c *config.Config) { c.PoolMode = config.PoolStatement },
		"load_balance_hosts":       func(c *config.Config) { c.LoadBalanceHosts = "round-robin" },
		"session_state":            func(c *config.Config) { c.SessionState = config.StatePinAll },
		"max_pinned_servers":       func(c *config.Config) { c.MaxPinnedServers = 2 },
		"pool_size":                func(c *config.Config) { c.PoolSize = 6 },
		"min_pool_size":            func(c *config.Config) { c.MinPoolSize = 1 },
		"reserve_pool_size":        func(c *config.Config) { c.ReservePoolSize = 1 },
		"reserve_pool_timeout":     func(c *config.Config) { c.ReservePoolTimeout = time.Second },
		"max_client_conn":          func(c *config.Config) { c.MaxClientConn = 500 },
		"max_login_conn":           func(c *config.Config) { c.MaxLoginConn = 300 },
		"max_login_conn_per_addr":  func(c *config.Config) { c.MaxLoginConnPerAddr = 100 },
		"max_db_connections":       func(c *config.Config) { c.MaxDBConnections = 10 },
		"max_user_connections":     func(c *config.Config) { c.MaxUserConnections = 10 },
		"max_message_size":         func(c *config.Config) { c.MaxMessageSize = 1 << 20 },
		"max_prepared_statements":  func(c *config.Config) { c.MaxPreparedStatements = 50 },
		"query_wait_timeout":       func(c *config.Config) { c.QueryWaitTimeout = 30 * time.Second },
		"query_wait_notify":        func(c *config.Config) { c.QueryWaitNotify = time.Second },
		"query_timeout":            func(c *config.Config) { c.QueryTimeout = time.Minute },
		"idle_transaction_timeout": func(c *config.Config) { c.IdleTransactionTimeout = time.Minute },
		"client_idle_timeout":      func(c *config.Config) { c.ClientIdleTimeout = time.Minute },
		"client_login_timeout":     func(c *config.Config) { c.ClientLoginTimeout = 30 * time.Second },
		"server_connect_timeout":   func(c *config.Config) { c.ServerConnectTimeout = 5 * time.Second },
		"server_login_retry":       func(c *config.Config) { c.ServerLoginRetry = 100 * time.Millisecond },
		"server_idle_timeout":      func(c *config.Config) { c.ServerIdleTimeout = time.Second },
		"server_lifetime":          func(c *config.Config) { c.ServerLifetime = time.Second },
		"server_check_delay":       func(c *config.Config) { c.ServerCheckDelay = 0 },
		"health_check_period":      func(c *config.Config) { c.HealthCheckPeriod = time.Second },
		"max_replica_lag":          func(c *config.Config) { c.MaxReplicaLag = 10 * time.Second },
		"server_reset_query":       func(c *config.Config) { c.ServerResetQuery = "RESET ALL" },
		"shutdown_timeout":         func(c *config.Config) { c.ShutdownTimeout = 10 * time.Second },
		"log_level":                func(c *config.Config) { c.LogLevel = "warn" },
		"log_query_text":           func(c *config.Config) { c.LogQueryText = false },
		"log_slow_query":           func(c *config.Config) { c.LogSlowQuery = 5 * time.Second },
		"admin_users":              func(c *config.Config) { c.AdminUsers = []string{"admin", "ops"} },
		"stats_users":              func(c *config.Config) { c.StatsUsers = []string{"grafana"} },
	}
}

// Every setting a reload applies is changed, one after the other, while
// clients run transactions: each reload reports its change, the file
// stays valid, and no client notices (the routes stay; a change of pool
// mode or upstream retires a pool, whose clients keep it until they go).
func TestEveryLiveKeyIsChangedUnderLoad(t *testing.T) {
	changes := liveChanges(t)
	var live []string
	for _, it := range config.Default().Items() {
		if it.Changeable {
			live = append(live, it.Key)
		}
	}
	for _, k := range live {
		if _, ok := changes[k]; !ok {
			t.Errorf("live key %s has no change in liveChanges", k)
		}
	}
	if t.Failed() {
		return
	}
	slices.Sort(live)
	// Routes and users are tables, not keys: one change of each too.
	userKey := "users." + cluster.User + ".max_user_connections"
	changes["databases.extra"] = func(c *config.Config) {
		c.Databases = maps.Clone(c.Databases)
		c.Databases["extra"] = config.Database{Name: "extra", Upstream: c.Upstream}
	}
	changes[userKey] = func(c *config.Config) {
		c.Users = map[string]config.User{cluster.User: {Name: cluster.User, MaxUserConnections: 8}}
	}
	live = append(live, "databases.extra", userKey)
	n, err := reloadUnderLoad(t, live, changes)
	if n != 0 {
		t.Fatalf("%d client errors during the reloads, the first: %v", n, err)
	}
	t.Logf("%d live keys changed under load, no client error", len(live))
}

// The check above sees clients that a reload hurts: here a query_timeout
// of a microsecond cancels their queries.
func TestReloadUnderLoadSeesTheClientsAReloadHurts(t *testing.T) {
	hurt := map[string]func(*config.Config){"query_timeout": func(c *config.Config) { c.QueryTimeout = time.Microsecond }}
	if n, _ := reloadUnderLoad(t, []string{"query_timeout"}, hurt); n == 0 {
		t.Fatal("no client error seen after a reload that cancels every query")
	}
}

// reloadUnderLoad runs 6 clients in transactions through pgvalve and, one
// key after the other, reloads with that key changed; it checks that each
// reload reports its key, and returns how many client errors there were
// and the first.
func reloadUnderLoad(t *testing.T, keys []string, changes map[string]func(*config.Config)) (int64, error) {
	t.Helper()
	cfg := txnConfig(4)
	cfg.Listen = "127.0.0.1:0" // as valvetest listens: a reload compares with it
	s, url := startValve(t, cfg)
	var errs atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, stop := context.WithCancel(testutil.Context(t))
	var wg sync.WaitGroup
	var txns atomic.Int64
	for range 6 {
		c := testutil.Connect(t, url)
		wg.Go(func() {
			for ctx.Err() == nil {
				var n int
				err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, "select 1").Scan(&n)
				})
				if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					errs.Add(1)
					once.Do(func() { firstErr = err })
				}
				txns.Add(1)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	running := cfg
	for _, key := range keys {
		next := running
		changes[key](&next)
		if err := next.Validate(); err != nil {
			t.Fatalf("%s: the change is not valid: %v", key, err)
		}
		before := txns.Load()
		got := s.App.Reload(next)
		if !slices.ContainsFunc(got, func(c config.Change) bool { return c.Key == key }) {
			t.Errorf("%s: the reload reported %v, not the key changed", key, got)
		}
		running = next
		testutil.Eventually(t, "transactions after changing "+key, func() bool { return txns.Load() > before+6 })
	}
	for range 3 { // the last change is in force for a few transactions too
		before := txns.Load()
		testutil.Eventually(t, "transactions after the last change", func() bool { return txns.Load() > before+6 })
	}
	stop()
	wg.Wait()
	return errs.Load(), firstErr // read after wg.Wait: no race

}
