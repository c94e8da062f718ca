package console_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func connect(t *testing.T, s *consoleServer, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig("postgres://" + user + "@" + s.addr + "/pgbouncer?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// result is one answer read raw through pgconn.
type result struct {
	cols []string
	oids []uint32
	rows [][]string // NULL reads as "<null>"
	tag  string
	err  *pgconn.PgError
}

func run(t *testing.T, conn *pgx.Conn, q string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := conn.PgConn().Exec(ctx, q).ReadAll()
	var r result
	if err != nil {
		if !errors.As(err, &r.err) {
			t.Fatalf("%s: %v", q, err)
		}
		return r
	}
	if len(rs) != 1 {
		t.Fatalf("%s: %d results", q, len(rs))
	}
	for _, f := range rs[0].FieldDescriptions {
		r.cols = append(r.cols, f.Name)
		r.oids = append(r.oids, f.DataTypeOID)
	}
	for _, row := range rs[0].Rows {
		var cells []string
		for _, v := range row {
			if v == nil {
				cells = append(cells, "<null>")
			} else {
				cells = append(cells, string(v))
			}
		}
		r.rows = append(r.rows, cells)
	}
	r.tag = rs[0].CommandTag.String()
	return r
}

// cell is row's value in column name.
func (r result) cell(t *testing.T, row int, name string) string {
	t.Helper()
	i := slices.Index(r.cols, name)
	if i < 0 || row >= len(r.rows) {
		t.Fatalf("no column %q or row %d in %v (%d rows)", name, row, r.cols, len(r.rows))
	}
	return r.rows[row][i]
}

var socketCols = []string{"type", "user", "database", "replication", "state", "addr", "port", "local_addr", "local_port",
	"connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid", "tls",
	"application_name", "prepared_statements", "id"}

// golden are each SHOW's columns, in order: PgBouncer's where PgBouncer
// has the command.
var golden = map[string][]string{
	"POOLS": {"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
		"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
		"maxwait", "maxwait_us", "pool_mode", "load_balance_hosts"},
	"STATS": {"database", "total_server_assignment_count", "total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time", "total_client_parse_count", "total_server_parse_count",
		"total_bind_count", "total_client_login_count", "avg_server_assignment_count", "avg_xact_count", "avg_query_count",
		"avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time", "avg_client_parse_count",
		"avg_server_parse_count", "avg_bind_count", "avg_client_login_count", "total_requests"},
	"STATS_TOTALS": {"database", "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
		"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count", "client_login_count"},
	"STATS_AVERAGES": {"database", "server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
		"xact_time", "query_time", "wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count", "avg_client_login_count"},
	"TOTALS":  {"name", "value"},
	"CLIENTS": append(slices.Clip(socketCols), "pinned"), // pgvalve's own column last
	"SERVERS": socketCols,
	"DATABASES": {"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "reserve_pool_size",
		"server_lifetime", "pool_mode", "load_balance_hosts", "max_connections", "current_connections",
		"max_client_connections", "current_client_connections", "paused", "disabled", "reserve_pool"},
	"USERS": {"name", "pool_size", "reserve_pool_size", "pool_mode", "max_user_connections", "current_connections",
		"max_user_client_connections", "current_client_connections"},
	"CONFIG":  {"key", "value", "default", "changeable"},
	"LISTS":   {"list", "items"},
	"PEERS":   {"peer_id", "host", "port", "pool_size", "self"},
	"STATE":   {"key", "value"},
	"VERSION": {"version"},
	"HOLDERS": {"id", "addr", "user", "database", "application_name", "server", "held_since", "held_for", "state", "query", "server_share", "pinned"},
	"LATENCY": {"database", "user", "kind", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms",
		"total_count", "total_p50_ms", "total_p95_ms", "total_p99_ms", "total_max_ms"},
	"DIAGNOSIS": {"diagnosis"},
	"HOSTS": {"database", "user", "host", "state", "role", "lag_ms", "weight", "outstanding", "idle", "connecting", "chosen",
		"last_error"},
}

func TestEveryShowHasItsColumnsInOrder(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "stats")
	for cmd, want := range golden {
		r := run(t, conn, "SHOW "+cmd)
		if r.err != nil {
			t.Errorf("SHOW %s: %v", cmd, r.err)
			continue
		}
		if !slices.Equal(r.cols, want) {
			t.Errorf("SHOW %s columns:\n got %q\nwant %q", cmd, r.cols, want)
		}
		if r.tag != "SHOW" {
			t.Errorf("SHOW %s tag %q", cmd, r.tag)
		}
	}
}

// PgBouncer's declared types: ints are int4, stats numeric, times text.
func TestShowDeclaresPgBouncersTypes(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "stats")
	const text, int4, int8, numeric = 25, 23, 20, 1700
	for _, c := range []struct {
		cmd, col string
		oid      uint32
	}{
		{"POOLS", "database", text}, {"POOLS", "cl_active", int4}, {"POOLS", "maxwait_us", int4},
		{"STATS", "total_query_count", numeric}, {"STATS", "avg_wait_time", numeric},
		{"TOTALS", "value", numeric},
		{"CLIENTS", "connect_time", text}, {"CLIENTS", "port", int4}, {"CLIENTS", "id", int8},
		{"DATABASES", "port", int4}, {"USERS", "pool_size", text}, {"LISTS", "items", int4},
		{"HOLDERS", "held_since", 1184}, {"LATENCY", "p99_ms", numeric},
	} {
		r := run(t, conn, "SHOW "+c.cmd)
		if i := slices.Index(r.cols, c.col); i < 0 || r.oids[i] != c.oid {
			t.Errorf("SHOW %s %s: oid %v, want %d", c.cmd, c.col, r.oids, c.oid)
		}
	}
}

func TestSaturatedPool(t *testing.T) {
	now := time.Now()
	s := startConsole(t, saturated(now))
	conn := connect(t, s, "admin")
	ctx := context.Background()

	// Typed through pgx: the declared types decode.
	var db, user, mode string
	var clActive, clWaiting, svActive, maxwait int32
	err := conn.QueryRow(ctx, "show pools;").Scan(&db, &user, &clActive, &clWaiting, new(int32), new(int32),
		&svActive, new(int32), new(int32), new(int32), new(int32), new(int32), new(int32), &maxwait, new(int32), &mode, new(*string))
	if err != nil {
		t.Fatal(err)
	}
	if db != "app" || user != "app" || clActive != 2 || clWaiting != 1 || svActive != 2 || maxwait != 1 || mode != "transaction" {
		t.Errorf("SHOW POOLS: %s/%s cl_active %d cl_waiting %d sv_active %d maxwait %d mode %s", db, user, clActive, clWaiting, svActive, maxwait, mode)
	}

	h := run(t, conn, "SHOW HOLDERS")
	if len(h.rows) != 2 {
		t.Fatalf("SHOW HOLDERS: %d rows, want 2: %q", len(h.rows), h.rows)
	}
	for i, pid := range []string{"101", "102"} {
		if got := h.cell(t, i, "application_name"); got != "worker" {
			t.Errorf("holder %d application_name %q", i, got)
		}
		if got := h.cell(t, i, "state"); got != "idle in transaction" {
			t.Errorf("holder %d state %q", i, got)
		}
		if got := h.cell(t, i, "server"); got != pid {
			t.Errorf("holder %d server %q, want %s", i, got, pid)
		}
	}
	if got := h.cell(t, 0, "query"); got != "UPDATE jobs SET state = 'taken' WHERE id = 1" {
		t.Errorf("holder query %q", got)
	}
	if got := h.cell(t, 1, "server_share"); got != "0.375" {
		t.Errorf("server_share %q", got)
	}
	var since time.Time
	if err := conn.QueryRow(ctx, "SHOW HOLDERS").Scan(new(int64), new(string), new(string), new(string), new(string),
		new(int32), &since, new(float64), new(string), new(string), new(float64), new(string)); err != nil {
		t.Fatal(err)
	}
	if d := since.Sub(now.Add(-30 * time.Second)); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("held_since %v, want %v", since, now.Add(-30*time.Second))
	}

	d := run(t, conn, "SHOW DIAGNOSIS")
	if len(d.rows) != 1 {
		t.Fatalf("SHOW DIAGNOSIS: %q", d.rows)
	}
	line := d.rows[0][0]
	for _, want := range []string{"pool app/app", "2 of 2 servers busy", "1 client waiting", "application 'worker', 10.0.0.7", "idle in transaction"} {
		if !strings.Contains(line, want) {
			t.Errorf("diagnosis %q lacks %q", line, want)
		}
	}

	c := run(t, conn, "SHOW CLIENTS")
	if len(c.rows) != 3 || c.cell(t, 0, "link") != "s101" || c.cell(t, 2, "state") != "waiting" || c.cell(t, 2, "wait") != "1" ||
		c.cell(t, 0, "addr") != "10.0.0.7" || c.cell(t, 0, "port") != "40001" {
		t.Errorf("SHOW CLIENTS: %q", c.rows)
	}
	v := run(t, conn, "SHOW SERVERS")
	if len(v.rows) != 2 || v.cell(t, 0, "ptr") != "s101" || v.cell(t, 0, "link") != "c1" || v.cell(t, 0, "remote_pid") != "101" {
		t.Errorf("SHOW SERVERS: %q", v.rows)
	}
}

func TestStatsSumAndAverage(t *testing.T) {
	b := saturated(time.Now())
	second := b.pools[0]
	second.User = "other"
	b.pools = append(b.pools, second, observe2("else"))
	s := startConsole(t, b)
	conn := connect(t, s, "stats")

	r := run(t, conn, "SHOW STATS")
	if len(r.rows) != 2 || r.cell(t, 0, "database") != "app" || r.cell(t, 1, "database") != "else" {
		t.Fatalf("SHOW STATS rows: %q", r.rows)
	}
	for col, want := range map[string]string{
		"total_server_assignment_count": "240", "total_query_count": "600", "total_received": "12000",
		"total_query_time": "6000000", "total_wait_time": "4000000",
		"avg_query_count": "10",     // 600 queries in the last minute
		"avg_recv":        "200",    // 12000 bytes a minute
		"avg_query_time":  "10000",  // 6 s over 600 queries, µs
		"avg_wait_time":   "10000",  // 2.4 s over 240 assignments
		"avg_xact_time":   "100000", // 12 s over 120
		"avg_xact_count":  "2",
	} {
		if got := r.cell(t, 0, col); got != want {
			t.Errorf("SHOW STATS %s = %s, want %s", col, got, want)
		}
	}
	tot := run(t, conn, "SHOW TOTALS")
	if tot.rows[2][0] != "total_query_count" || tot.rows[2][1] != "600" {
		t.Errorf("SHOW TOTALS: %q", tot.rows)
	}
	lat := run(t, conn, "SHOW LATENCY")
	if len(lat.rows) != 9 || lat.cell(t, 1, "kind") != "query" || lat.cell(t, 1, "p50_ms") != "2.500" ||
		lat.cell(t, 1, "total_p50_ms") != "1.235" || lat.cell(t, 0, "total_p50_ms") != "<null>" {
		t.Errorf("SHOW LATENCY: %q", lat.rows)
	}
}

func TestVersionForExporters(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "stats")
	r := run(t, conn, "SHOW VERSION;")
	// prometheus-pgbouncer-exporter needs exactly one column named version.
	if len(r.cols) != 1 || r.cols[0] != "version" || len(r.rows) != 1 || r.rows[0][0] != "pgvalve 0.9.1" {
		t.Errorf("SHOW VERSION: %q %q", r.cols, r.rows)
	}
	if v := conn.PgConn().ParameterStatus("server_version"); v != "0.9.1/pgvalve" {
		t.Errorf("server_version %q", v)
	}
	// The exporter reads SHOW CONFIG's two limits as numbers.
	c := run(t, conn, "SHOW CONFIG")
	if c.cell(t, 0, "key") != "max_client_conn" || c.cell(t, 0, "value") != "100" || c.cell(t, 0, "changeable") != "yes" {
		t.Errorf("SHOW CONFIG: %q", c.rows)
	}
}

func TestUnknownCommandKeepsTheConnection(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "admin")
	for _, q := range []string{"SHOW NOTHING", "DROP TABLE x", "SHOW POOLS; SHOW STATS", "select 1 + 1", "pause a b"} {
		r := run(t, conn, q)
		if r.err == nil || r.err.Code != "08P01" || r.err.Message != "invalid command '"+q+"', use SHOW HELP;" {
			t.Errorf("%q: %+v", q, r.err)
		}
		if r := run(t, conn, "SHOW STATE"); r.err != nil || len(r.rows) != 3 {
			t.Fatalf("after %q: %+v", q, r)
		}
	}
	// An empty query is answered as PostgreSQL answers one.
	rs, err := conn.PgConn().Exec(context.Background(), " ; ").ReadAll()
	if err != nil || len(rs) != 1 || len(rs[0].Rows) != 0 {
		t.Errorf("empty query: %v %v", rs, err)
	}
}

func TestStatsUserCannotRunAdminCommands(t *testing.T) {
	b := saturated(time.Now())
	s := startConsole(t, b)
	conn := connect(t, s, "stats")
	for _, q := range []string{"PAUSE", "pause app", "RESUME", "KILL app", "KILL_CLIENT 1", "RELOAD", "SHUTDOWN", "RECONNECT", "WAIT_CLOSE"} {
		r := run(t, conn, q)
		if r.err == nil || r.err.Code != "42501" || r.err.Message != "admin access needed" {
			t.Errorf("%s as stats user: %+v", q, r.err)
		}
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("backend called: %q", calls)
	}
	if r := run(t, conn, "SHOW POOLS"); r.err != nil {
		t.Errorf("SHOW as stats user: %v", r.err)
	}
}

func TestAdminCommandsReachTheBackend(t *testing.T) {
	b := saturated(time.Now())
	s := startConsole(t, b)
	conn := connect(t, s, "admin")
	for _, c := range []struct{ q, tag, call string }{
		{"PAUSE", "PAUSE", "pause "},
		{"pause app;", "PAUSE", "pause app"},
		{`PAUSE "My Db"`, "PAUSE", "pause My Db"},
		{"PAUSE MixedCase", "PAUSE", "pause MixedCase"},
		{"RESUME app", "RESUME", "resume app"},
		{"resume", "RESUME", "resume "},
		{"RECONNECT app", "RECONNECT", "reconnect app"},
		{"KILL app", "KILL", "kill app"},
		{"KILL_CLIENT 42", "KILL_CLIENT", "kill_client 42"},
		{"WAIT_CLOSE app", "WAIT_CLOSE", "wait_close app"},
		{"\n\tReload ;\n", "RELOAD", "reload"},
		{"SHUTDOWN WAIT_FOR_CLIENTS", "SHUTDOWN", "shutdown 2"},
	} {
		before := len(b.Calls())
		r := run(t, conn, c.q)
		if r.err != nil || r.tag != c.tag {
			t.Errorf("%q: tag %q err %v", c.q, r.tag, r.err)
			continue
		}
		if calls := b.Calls(); len(calls) != before+1 || calls[before] != c.call {
			t.Errorf("%q: calls %q, want %q", c.q, calls[before:], c.call)
		}
	}
	for q, msg := range map[string]string{
		"PAUSE pgbouncer":  "cannot pause admin db: pgbouncer",
		"KILL_CLIENT abc":  "invalid client pointer supplied",
		"SUSPEND":          "SUSPEND is not supported by pgvalve",
		"SET foo = 'bar'":  "SET is not supported by pgvalve: change the configuration file and RELOAD",
		"SHUTDOWN SOMEHOW": "invalid command 'SHUTDOWN SOMEHOW', use SHOW HELP;",
	} {
		if r := run(t, conn, q); r.err == nil || r.err.Message != msg {
			t.Errorf("%q: %+v, want %q", q, r.err, msg)
		}
	}
	// The Backend's refusals reach the client in its words.
	b.mu.Lock()
	b.err = errors.New("no such database: nope")
	b.mu.Unlock()
	if r := run(t, conn, "RESUME nope"); r.err == nil || r.err.Code != "08P01" || r.err.Message != "no such database: nope" {
		t.Errorf("backend error: %+v", r.err)
	}
	if r := run(t, conn, "RELOAD"); r.err == nil || r.err.Code != "F0000" {
		t.Errorf("reload error: %+v", r.err)
	}
}

func TestFakeParametersAndHelp(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "stats")
	if r := run(t, conn, "SHOW client_encoding"); len(r.rows) != 1 || r.rows[0][0] != "UTF-8" {
		t.Errorf("SHOW client_encoding: %+v", r)
	}
	var notices []string
	cfg := conn.Config().Config.Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message+n.Detail) }
	pc, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	if _, err := pc.Exec(context.Background(), "SET datestyle TO 'ISO'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(context.Background(), "SHOW HELP").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 2 || notices[0] != "SET ignored" || !strings.Contains(notices[1], "SHOW HOLDERS") {
		t.Errorf("notices %q", notices)
	}
}

// SHOW PEERS lists the fleet as PgBouncer does, marking this instance, and
// SHOW LISTS counts it.
func TestShowPeersListsTheFleetAndListsCountsIt(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn := connect(t, s, "stats")
	r := run(t, conn, "SHOW PEERS")
	if r.err != nil || len(r.rows) != 2 || strings.Join(r.rows[0], "|") != "1|10.0.0.8|6432|0|yes" || r.rows[1][4] != "no" {
		t.Fatalf("SHOW PEERS: %v %v", r.rows, r.err)
	}
	for _, row := range run(t, conn, "SHOW LISTS").rows {
		if row[0] == "peers" && row[1] != "2" {
			t.Fatalf("SHOW LISTS counts %s peers; want 2", row[1])
		}
	}
}
