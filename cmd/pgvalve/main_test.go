package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// cluster is the real PostgreSQL the signal tests run pgvalve in front of.
var cluster *pgtest.Cluster

// childEnv makes the test binary run pgvalve's main instead of the tests:
// the signal tests start it as a child process, so that it gets real
// signals by its PID and the test process none.
const childEnv = "PGVALVE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Run(m, &cluster, pgtest.Options{}))
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = realMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgvalve.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfigAcceptsAGoodFileAndNamesTheLineOfABadOne(t *testing.T) {
	good := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\npool_size = 5\n")
	if code, out, errOut := run("check-config", "--config", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good file: code %d, %q %q", code, out, errOut)
	}
	bad := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\n\npool_szie = 5\n")
	code, _, errOut := run("check-config", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "pgvalve.toml:3:") || !strings.Contains(errOut, "pool_szie") {
		t.Fatalf("bad file: code %d, stderr %q; want exit 1 naming line 3 and the key", code, errOut)
	}
	if code, _, _ := run("check-config"); code != 2 {
		t.Fatalf("missing --config: code %d, want 2", code)
	}
}

func TestFlagsOverrideTheConfigFile(t *testing.T) {
	file := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\npool_size = 5\npool_mode = \"session\"\nquery_wait_timeout = 3\n")
	var errOut strings.Builder
	cfg, err := loadConfig("run", []string{"--config", file, "--pool-size", "7", "--listen", "127.0.0.1:7000"}, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PoolSize != 7 || cfg.Listen != "127.0.0.1:7000" {
		t.Fatalf("flags did not override: %+v", cfg)
	}
	if cfg.QueryWaitTimeout != 3*time.Second || cfg.PoolMode != config.PoolSession {
		t.Fatalf("file values lost: %+v", cfg)
	}
}

// A fleet's instances share one file; each is told its peer_id on its
// command line (the Helm chart's StatefulSet gives each pod its ordinal).
func TestPeerIDFlagNamesTheInstanceOfASharedPeersList(t *testing.T) {
	file := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\n[peers.1]\nhost = \"a\"\n[peers.2]\nhost = \"b\"\n")
	cfg, err := loadConfig("run", []string{"--config", file, "--peer-id", "2"}, io.Discard)
	if err != nil || cfg.PeerID != 2 || len(cfg.Peers) != 2 {
		t.Fatalf("peer_id %d, %d peers, %v; want 2 of the file's 2", cfg.PeerID, len(cfg.Peers), err)
	}
	if cfg, err := loadConfig("run", []string{"--config", file}, io.Discard); err != nil || cfg.PeerID != 0 {
		t.Fatalf("[peers] without --peer-id: peer_id %d, %v; want the file read, outside a fleet", cfg.PeerID, err)
	}
}

func TestUpstreamGivenTwiceNamesTwoHostsOfOneServer(t *testing.T) {
	var errOut strings.Builder
	cfg, err := loadConfig("run", []string{"--upstream", "postgres://u@10.0.0.1/db", "--upstream", "postgres://u@10.0.0.2:5433/db"}, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://u@10.0.0.1:5432,10.0.0.2:5433/db"; cfg.Upstream != want {
		t.Fatalf("upstream %q; want %q", cfg.Upstream, want)
	}
	if _, err := loadConfig("run", []string{"--upstream", "postgres://u@h1/db", "--upstream", "postgres://v@h2/db"}, &errOut); err == nil {
		t.Fatal("two --upstream URLs for different users were taken together")
	}
}

func TestRunRefusesBadFlagValuesWithAMessage(t *testing.T) {
	cases := map[string][]string{
		"bad pool mode": {"run", "--upstream", "postgres://u@h/db", "--pool-mode", "sesion"},
		"no upstream":   {"run"},
		"bad auth":      {"run", "--upstream", "postgres://u@h/db", "--auth", "md5"},
		"stray arg":     {"run", "--upstream", "postgres://u@h/db", "extra"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := run(args...)
			if code != 2 || errOut == "" {
				t.Fatalf("code %d, stderr %q; want 2 and a message", code, errOut)
			}
		})
	}
}

func TestVersionAndUnknownCommands(t *testing.T) {
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "pgvalve ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := run("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
}

func TestQueryWaitTimeoutTakesADurationOrPlainSeconds(t *testing.T) {
	cases := map[string]time.Duration{"20s": 20 * time.Second, "120": 120 * time.Second, "0.5": 500 * time.Millisecond, "0": 0}
	for in, want := range cases {
		var errOut strings.Builder
		cfg, err := loadConfig("run", []string{"--upstream", "postgres://u@h/db", "--query-wait-timeout", in}, &errOut)
		if err != nil || cfg.QueryWaitTimeout != want {
			t.Fatalf("%q: got %v, %v; want %v", in, cfg.QueryWaitTimeout, err, want)
		}
	}
	var errOut strings.Builder
	if _, err := loadConfig("run", []string{"--upstream", "postgres://u@h/db", "--query-wait-timeout", "soon"}, &errOut); err == nil {
		t.Fatal("a value that is neither must be refused")
	}
}

func TestObservabilityFlagsOverrideTheirKeys(t *testing.T) {
	file := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\nadmin_users = [\"root\"]\nlog_format = \"json\"\n")
	cfg, err := loadConfig("run", []string{"--config", file, "--admin-users", "admin, ops", "--stats-users", "grafana",
		"--metrics-listen", "127.0.0.1:9187", "--log-slow-query", "0.5", "--log-query-text=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.AdminUsers, "|") != "admin|ops" || strings.Join(cfg.StatsUsers, "|") != "grafana" {
		t.Fatalf("admin users %q, stats users %q; want the flags' lists", cfg.AdminUsers, cfg.StatsUsers)
	}
	if cfg.MetricsListen != "127.0.0.1:9187" || cfg.LogSlowQuery != 500*time.Millisecond || cfg.LogQueryText {
		t.Fatalf("metrics_listen %q log_slow_query %v log_query_text %v", cfg.MetricsListen, cfg.LogSlowQuery, cfg.LogQueryText)
	}
	if cfg.LogFormat != "json" {
		t.Fatalf("log_format %q; the file's json should stay when no flag sets it", cfg.LogFormat)
	}
}

func TestJSONLogFormatWritesOneJSONObjectPerLine(t *testing.T) {
	var out strings.Builder
	newLogger(&out, "json", levelVar("info")).Info("server lost", "pool", "app/app")
	var line map[string]any
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil {
		t.Fatalf("log line %q is not JSON: %v", out.String(), err)
	}
	if line["msg"] != "server lost" || line["pool"] != "app/app" {
		t.Fatalf("log line %v lacks its message or attribute", line)
	}
}

func TestAuthQueryFlagsOverrideTheirKeys(t *testing.T) {
	file := writeFile(t, "upstream = \"postgres://u@127.0.0.1:5432/db\"\nauth_type = \"md5\"\nauth_user = \"from_file\"\n")
	cfg, err := loadConfig("run", []string{"--config", file, "--auth-user", "pgvalve_auth",
		"--auth-query", "SELECT usename, passwd FROM lookup($1)", "--auth-dbname", "postgres"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthUser != "pgvalve_auth" || cfg.AuthQuery != "SELECT usename, passwd FROM lookup($1)" || cfg.AuthDBName != "postgres" {
		t.Fatalf("auth_user %q auth_query %q auth_dbname %q; want the flags'", cfg.AuthUser, cfg.AuthQuery, cfg.AuthDBName)
	}
}

func TestHBAAndUnixSocketFlagsSetTheirKeys(t *testing.T) {
	hbaFile := writeFile(t, "local all all peer\nhost all all 127.0.0.1/32 trust\n")
	cfg, err := loadConfig("run", []string{"--upstream", "postgres://u@h/db", "--auth-type", "hba", "--auth-hba-file", hbaFile,
		"--unix-socket-dir", "/run/pgvalve", "--unix-socket-mode", "0770"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth != config.AuthHBA || cfg.AuthHBAFile != hbaFile || cfg.UnixSocketDir != "/run/pgvalve" || cfg.UnixSocketMode != 0o770 {
		t.Fatalf("auth %q file %q dir %q mode %o", cfg.Auth, cfg.AuthHBAFile, cfg.UnixSocketDir, cfg.UnixSocketMode)
	}
	bad := writeFile(t, "host all +admins all reject\n")
	for _, args := range [][]string{
		{"--auth-type", "hba"},
		{"--auth-type", "hba", "--auth-hba-file", bad},
		{"--unix-socket-mode", "rwx"},
	} {
		_, err := loadConfig("run", append([]string{"--upstream", "postgres://u@h/db"}, args...), io.Discard)
		if err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	if _, err := loadConfig("run", []string{"--upstream", "postgres://u@h/db", "--auth-type", "hba", "--auth-hba-file", bad}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), ":1: user \"+admins\"") {
		t.Fatalf("a bad hba file: %v; want its line", err)
	}
}
