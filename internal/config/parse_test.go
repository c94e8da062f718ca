package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// errLines splits a joined error into its messages.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseRejectsBadFilesWithLineNumberedMessages(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown key", "listen = \":6432\"\n\n\n\n\n\npool_szie = 5\n",
			[]string{`pgvalve.toml:7: unknown key "pool_szie"`}},
		{"bad pool mode", "# comment\n\npool_mode = \"sesion\"\n",
			[]string{`pgvalve.toml:3: pool_mode: "sesion" is not one of session, transaction, statement`}},
		{"syntax error keeps parser line", "pool_size = 1\nlisten = \n",
			[]string{`pgvalve.toml:2: expected value but found '\n' instead`}},
		{"wrong type", "\npool_size = \"20\"\n",
			[]string{`pgvalve.toml:2: pool_size: expected integer, got string`}},
		{"float where integer wanted", "max_client_conn = 1.5\n",
			[]string{`pgvalve.toml:1: max_client_conn: expected integer, got float`}},
		{"unknown table", "[pool]\nsize = 1\n",
			[]string{`pgvalve.toml:1: unknown key "pool"`}},
		{"unknown database key", "[databases.app]\nupstream = \"postgres://h/app\"\npoolsize = 2\n",
			[]string{`pgvalve.toml:3: unknown key "databases.app.poolsize"`}},
		{"all problems sorted by line", "log_level = \"loud\"\npool_size = 0\nbogus = 1\nauth = \"kerberos\"\nshutdown_timeout = \"-1s\"\n",
			[]string{
				`pgvalve.toml:1: log_level: "loud" is not one of debug, info, warn, error`,
				`pgvalve.toml:2: pool_size: must be at least 1`,
				`pgvalve.toml:3: unknown key "bogus"`,
				`pgvalve.toml:4: auth_type: "kerberos" is not one of trust, passthrough, scram-sha-256, md5, plain, cert, hba`,
				`pgvalve.toml:5: shutdown_timeout: must not be negative`,
			}},
		{"alias named as written", "default_pool_size = -1\n",
			[]string{`pgvalve.toml:1: default_pool_size: must be at least 1`}},
		{"alias and name together", "pool_size = 2\ndefault_pool_size = 3\n",
			[]string{`pgvalve.toml:1: pool_size: conflicts with its alias default_pool_size; set only one`}},
		{"bad duration string", "\nquery_wait_timeout = \"20 seconds\"\n",
			[]string{`pgvalve.toml:2: query_wait_timeout: invalid duration "20 seconds" (want e.g. "20s", "500ms" or a number of seconds)`}},
		{"duration of wrong type", "client_login_timeout = true\n",
			[]string{`pgvalve.toml:1: client_login_timeout: expected duration string or number of seconds, got boolean`}},
		{"duration out of range", "shutdown_timeout = 1e300\n",
			[]string{`pgvalve.toml:1: shutdown_timeout: 1e+300 seconds is out of range`}},
		{"negative number of seconds", "query_wait_timeout = -3\n",
			[]string{`pgvalve.toml:1: query_wait_timeout: must not be negative`}},
		{"new timeouts and sizes checked", "server_lifetime = -1\nidle_transaction_timeout = \"-2s\"\nmin_pool_size = 21\nreserve_pool_size = -1\n",
			[]string{
				`pgvalve.toml:1: server_lifetime: must not be negative`,
				`pgvalve.toml:2: idle_transaction_timeout: must not be negative`,
				`pgvalve.toml:3: min_pool_size: must not exceed pool_size (20)`,
				`pgvalve.toml:4: reserve_pool_size: must not be negative`,
			}},
		{"hba without its file points at auth_type", "\nauth_type = \"hba\"\n",
			[]string{`pgvalve.toml:2: auth_hba_file: auth_type hba takes its rules from auth_hba_file; set it`}},
		{"unix socket mode", "unix_socket_mode = \"0778\"\n",
			[]string{`pgvalve.toml:1: unix_socket_mode: "0778" is not an octal mode such as "0770"`}},
		{"unix socket mode as a decimal integer", "unix_socket_mode = 777\n",
			[]string{`pgvalve.toml:1: unix_socket_mode: 01411 is not a permission mode (at most 0777; write it as a string, "0770")`}},
		{"unix socket dir too long", "unix_socket_dir = \"/" + strings.Repeat("d", 100) + "\"\n",
			[]string{`pgvalve.toml:1: unix_socket_dir: too long: the socket's path must fit in 103 bytes`}},
		{"message size too small", "max_message_size = 100\n",
			[]string{`pgvalve.toml:1: max_message_size: must be between 1024 and 1073741823`}},
		{"message size too large", "max_message_size = 1073741824\n",
			[]string{`pgvalve.toml:1: max_message_size: must be between 1024 and 1073741823`}},
		{"listen without port", "listen = \"localhost\"\n",
			[]string{`pgvalve.toml:1: listen: "localhost" is not host:port: missing port in address`}},
		{"listen with bad port", "listen = \"localhost:http\"\n",
			[]string{`pgvalve.toml:1: listen: invalid port "http"`}},
		{"global upstream without host", "upstream = \"postgres:///app\"\n",
			[]string{`pgvalve.toml:1: upstream: missing host`}},
		{"route without upstream points at its header", "\n[databases.app]\npool_size = 2\n",
			[]string{`pgvalve.toml:2: databases.app: upstream is required`}},
		{"route with bad values", "[databases.app]\nupstream = \"postgres://h:0/app\"\npool_mode = \"tx\"\npool_size = -2\n",
			[]string{
				`pgvalve.toml:2: databases.app.upstream: invalid port "0"`,
				`pgvalve.toml:3: databases.app.pool_mode: "tx" is not one of session, transaction, statement`,
				`pgvalve.toml:4: databases.app.pool_size: must be at least 1 (or 0 to inherit pool_size)`,
			}},
		{"route of wrong type", "databases = { app = \"postgres://h/app\" }\n",
			[]string{`pgvalve.toml:1: databases.app: expected a table, got string`}},
		{"databases of wrong type", "\ndatabases = [1]\n",
			[]string{`pgvalve.toml:2: databases: expected a table of [databases.NAME] routes, got array`}},
		{"empty database name", "[databases.\"\"]\nupstream = \"postgres://h/\"\n",
			[]string{`pgvalve.toml:1: databases."": database name must not be empty`}},
		{"quoted database name", "[databases.\"my app\"]\nupstream = \"mysql://h/\"\n",
			[]string{`pgvalve.toml:2: databases."my app".upstream: unsupported scheme "mysql" (want postgres or postgresql)`}},
		{"key after multi-line string", "server_reset_query = \"\"\"\nDISCARD ALL;\n[not a table]\n\"\"\"\nextra = 1\n",
			[]string{`pgvalve.toml:5: unknown key "extra"`}},
		{"auth_user without a query", "auth_type = \"scram-sha-256\"\nauth_user = \"pgvalve_auth\"\nauth_query = \" \"\n",
			[]string{`pgvalve.toml:3: auth_query: auth_user "pgvalve_auth" runs auth_query: it must not be empty`}},
		{"auth_dbname no route serves", "auth_user = \"a\"\n\nauth_dbname = \"authdb\"\n[databases.app]\nupstream = \"postgres://h/app\"\n",
			[]string{`pgvalve.toml:3: auth_dbname: "authdb" is neither a [databases] route nor served by the global upstream (which is not set)`}},
		{"unknown server sslmode", "\nserver_tls_sslmode = \"verify\"\n",
			[]string{`pgvalve.toml:2: server_tls_sslmode: "verify" is not one of disable, allow, prefer, require, verify-ca, verify-full`}},
		{"server verification without a CA points at the mode", "# servers\nserver_tls_sslmode = \"verify-full\"\n",
			[]string{`pgvalve.toml:2: server_tls_ca_file: server_tls_sslmode verify-full checks the server's certificate against server_tls_ca_file; set it (a PEM file, or "system" for the system's roots)`}},
		{"server client certificate without its key", "server_tls_sslmode = \"require\"\nserver_tls_cert_file = \"pgvalve.crt\"\n",
			[]string{`pgvalve.toml:1: server_tls_key_file: pgvalve's client certificate for servers needs both server_tls_key_file and server_tls_cert_file`}},
		{"keys are case-sensitive", "Pool_Size = 3\n",
			[]string{`pgvalve.toml:1: unknown key "Pool_Size"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("pgvalve.toml", []byte(tt.doc))
			got := errLines(err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("errors:\n got  %q\n want %q", got, tt.want)
			}
			if cfg.Listen != "" || cfg.Databases != nil {
				t.Fatalf("failed Parse returned a non-zero Config: %+v", cfg)
			}
		})
	}
}

func TestParseAcceptsDurationsAsStringsOrSeconds(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{`"20s"`, 20 * time.Second},
		{`"500ms"`, 500 * time.Millisecond},
		{`"1h30m"`, 90 * time.Minute},
		{`"0"`, 0},
		{`45`, 45 * time.Second},
		{`0`, 0},
		{`0.25`, 250 * time.Millisecond},
		{`1.1`, 1100 * time.Millisecond},
		{`1_000`, 1000 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			doc := "query_wait_timeout = " + tt.value + "\nclient_login_timeout = " + tt.value +
				"\nshutdown_timeout = " + tt.value + "\n"
			cfg, err := Parse("d.toml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]time.Duration{
				"query_wait_timeout":   cfg.QueryWaitTimeout,
				"client_login_timeout": cfg.ClientLoginTimeout,
				"shutdown_timeout":     cfg.ShutdownTimeout,
			} {
				if got != tt.want {
					t.Errorf("%s = %v, want %v", name, got, tt.want)
				}
			}
		})
	}
}

func TestParseAcceptsDefaultPoolSizeAlias(t *testing.T) {
	cfg, err := Parse("a.toml", []byte("default_pool_size = 9\n"))
	if err != nil || cfg.PoolSize != 9 {
		t.Fatalf("PoolSize = %d, err = %v; want 9, nil", cfg.PoolSize, err)
	}
}

func TestParseAcceptsRoutesWrittenInlineOrDotted(t *testing.T) {
	const doc = `databases.a.upstream = "postgres://a/a"
databases.b = { upstream = "postgres://b/b", pool_size = 4 }
`
	cfg, err := Parse("r.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Databases["a"], cfg.Databases["b"]
	if !reflect.DeepEqual(a, Database{Name: "a", Upstream: "postgres://a/a", Line: 1}) ||
		!reflect.DeepEqual(b, Database{Name: "b", Upstream: "postgres://b/b", PoolSize: 4, Line: 2}) {
		t.Fatalf("got a=%+v b=%+v", a, b)
	}
}

func TestValidateDoesNotBlameFileForOverriddenValues(t *testing.T) {
	cfg, err := Parse("pgvalve.toml", []byte("\npool_size = 4\n[databases.app]\nupstream = \"postgres://h/app\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.PoolSize = 0       // as a -pool-size flag would
	cfg.LogLevel = "trace" // a default overridden, never in the file
	want := []string{
		`pool_size: must be at least 1`,
		`log_level: "trace" is not one of debug, info, warn, error`,
	}
	if got := errLines(cfg.Validate()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestValidateDoesNotBlameFileForOverriddenRouteValues(t *testing.T) {
	cfg, err := Parse("pgvalve.toml", []byte("[databases.app]\nupstream = \"postgres://h/app\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Databases = map[string]Database{"app": {Name: "app", Upstream: "postgres://h/app", PoolSize: -1}}
	want := `databases.app.pool_size: must be at least 1 (or 0 to inherit pool_size)`
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestValidateWorksWithoutAFile(t *testing.T) {
	cfg := Default()
	cfg.Listen = "nowhere"
	cfg.Databases = map[string]Database{"x": {Name: "x"}}
	want := []string{
		`listen: "nowhere" is not host:port: missing port in address`,
		`databases.x: upstream is required`,
	}
	if got := errLines(cfg.Validate()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestParseReadsObservabilitySettings(t *testing.T) {
	doc := "admin_users = \"admin, ops\"\nstats_users = [\"grafana\"]\nmetrics_listen = \"127.0.0.1:9187\"\n" +
		"log_format = \"json\"\nlog_query_text = false\nlog_slow_query = \"250ms\"\n"
	cfg, err := Parse("pgvalve.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.AdminUsers, "|") != "admin|ops" || strings.Join(cfg.StatsUsers, "|") != "grafana" {
		t.Fatalf("admin_users %q stats_users %q; want [admin ops] and [grafana]", cfg.AdminUsers, cfg.StatsUsers)
	}
	if cfg.MetricsListen != "127.0.0.1:9187" || cfg.LogFormat != "json" || cfg.LogQueryText || cfg.LogSlowQuery != 250*time.Millisecond {
		t.Fatalf("metrics_listen %q log_format %q log_query_text %v log_slow_query %v", cfg.MetricsListen, cfg.LogFormat, cfg.LogQueryText, cfg.LogSlowQuery)
	}
}

func TestParseRejectsBadObservabilitySettingsByLine(t *testing.T) {
	doc := "log_format = \"xml\"\nlog_query_text = \"no\"\nmetrics_listen = \"nowhere\"\nadmin_users = [\"a\", 3]\nstats_users = 5\nlog_slow_query = -1\n"
	_, err := Parse("pgvalve.toml", []byte(doc))
	want := []string{
		`pgvalve.toml:1: log_format: "xml" is not one of text, json`,
		`pgvalve.toml:2: log_query_text: expected boolean, got string`,
		`pgvalve.toml:3: metrics_listen: "nowhere" is not host:port: missing port in address`,
		`pgvalve.toml:4: admin_users: expected an array of strings, found integer in it`,
		`pgvalve.toml:5: stats_users: expected an array of strings or a comma-separated string, got integer`,
		`pgvalve.toml:6: log_slow_query: must not be negative (0 turns it off)`,
	}
	if got := errLines(err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAuthUserStandsInForAuthFileAndAuthDBNameMayUseTheGlobalUpstream(t *testing.T) {
	doc := "auth_type = \"scram-sha-256\"\nauth_user = \"pgvalve_auth\"\nauth_dbname = \"postgres\"\nupstream = \"postgres://h/app\"\n"
	cfg, err := Parse("pgvalve.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthQuery != DefaultAuthQuery {
		t.Fatalf("auth_query = %q, want PgBouncer's default", cfg.AuthQuery)
	}
	cfg.AuthUser = ""
	want := `pgvalve.toml:1: auth_file: auth_type scram-sha-256 checks clients against auth_file; set it`
	if got := errLines(cfg.Validate()); strings.Join(got, "\n") != want {
		t.Fatalf("without auth_user: got %q, want %q", got, want)
	}
}
