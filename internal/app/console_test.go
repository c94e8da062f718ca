package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// consoleConn logs in to pgvalve's admin console as user (trust).
func consoleConn(t *testing.T, s *valvetest.Server, user string) (*pgx.Conn, error) {
	t.Helper()
	return consoleLogin(t, s, user, "")
}

// consoleLogin logs in to the admin console as user with password; the
// connection closes when the test ends.
func consoleLogin(t *testing.T, s *valvetest.Server, user, password string) (*pgx.Conn, error) {
	t.Helper()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: s.Addr.String(), Path: "/pgbouncer", RawQuery: "sslmode=disable"}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	c, err := pgx.ConnectConfig(testutil.Context(t), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// show runs a console command and returns its rows by column name.
func show(t *testing.T, c *pgx.Conn, cmd string) []map[string]string {
	t.Helper()
	rows, err := c.Query(testutil.Context(t), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals := rows.RawValues()
		row := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = string(vals[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out
}

func TestTheConsoleShowsWhoHoldsASaturatedPoolAndWhoWaits(t *testing.T) {
	cfg := txnConfig(2)
	cfg.AdminUsers = []string{"admin"}
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	var workers []pgx.Tx
	for range 2 {
		wc, err := pgx.Connect(ctx, url+"&application_name=worker")
		if err != nil {
			t.Fatal(err)
		}
		defer wc.Close(context.Background())
		tx, err := wc.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "select 1"); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, tx)
	}
	third := connectTx(t, url)
	waited := make(chan error, 1)
	go func() { _, err := third.Exec(ctx, "select 1"); waited <- err }()

	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	pool := func() map[string]string {
		for _, r := range show(t, admin, "SHOW POOLS") {
			if r["database"] == pgtest.TestDatabase {
				return r
			}
		}
		t.Fatal("SHOW POOLS has no row for the test database")
		return nil
	}
	testutil.Eventually(t, "the third client to wait", func() bool { return pool()["cl_waiting"] == "1" })
	if p := pool(); p["cl_active"] != "2" || p["sv_active"] != "2" || p["pool_mode"] != "transaction" {
		t.Fatalf("SHOW POOLS row %v; want cl_active 2, cl_waiting 1, sv_active 2 in transaction mode", p)
	}
	holders := show(t, admin, "SHOW HOLDERS")
	if len(holders) != 2 {
		t.Fatalf("SHOW HOLDERS = %v; want the two workers", holders)
	}
	for _, h := range holders {
		if h["application_name"] != "worker" || h["server"] == "" || h["server"] == "0" {
			t.Fatalf("holder %v; want a worker with its backend pid", h)
		}
	}
	diag := strings.Join(flatten(show(t, admin, "SHOW DIAGNOSIS")), "\n")
	for _, want := range []string{pgtest.TestDatabase, "2 of 2 servers busy", "1 client", "worker"} {
		if !strings.Contains(diag, want) {
			t.Fatalf("SHOW DIAGNOSIS %q does not say %q", diag, want)
		}
	}
	srv := httptest.NewServer(metrics.NewHandler(s.App.Source()))
	defer srv.Close()
	body := scrape(t, srv.URL+"/metrics")
	waiting := fmt.Sprintf(`pgvalve_clients{database=%q,state="waiting",user=%q} 1`, pgtest.TestDatabase, cluster.User)
	if !strings.Contains(body, waiting) {
		t.Fatalf("/metrics lacks %s", waiting)
	}

	for _, tx := range workers {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-waited; err != nil {
		t.Fatalf("the waiting client's query: %v", err)
	}
	testutil.Eventually(t, "the pool to come to rest", func() bool {
		p := pool()
		return p["cl_waiting"] == "0" && p["sv_active"] == "0"
	})
	// Each worker sent BEGIN, select 1 and COMMIT, one transaction; the
	// third client one select 1, an implicit transaction: 3 and 7.
	for _, r := range show(t, admin, "SHOW STATS") {
		if r["database"] != pgtest.TestDatabase {
			continue
		}
		if r["total_xact_count"] != "3" || r["total_query_count"] != "7" || r["total_server_assignment_count"] == "0" {
			t.Fatalf("SHOW STATS row %v; want 3 transactions (two workers', one implicit) and 7 requests", r)
		}
	}
	if body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, fmt.Sprintf(
		`pgvalve_query_duration_seconds_count{database=%q,user=%q} 7`, pgtest.TestDatabase, cluster.User)) {
		t.Fatalf("/metrics does not count the 7 requests:\n%s", body)
	}
	if d := show(t, admin, "SHOW DIAGNOSIS"); len(d) != 0 {
		t.Fatalf("SHOW DIAGNOSIS at rest = %v; want nothing", d)
	}
	backends, err := backendsOf(ctx, direct(t), cluster.User)
	if err != nil {
		t.Fatal(err)
	}
	if p := pool(); p["sv_idle"] != fmt.Sprint(backends) {
		t.Fatalf("SHOW POOLS sv_idle %s; pg_stat_activity has %d servers", p["sv_idle"], backends)
	}
}

func flatten(rows []map[string]string) []string {
	var out []string
	for _, r := range rows {
		for _, v := range r {
			out = append(out, v)
		}
	}
	return out
}

func TestOnlyListedUsersGetTheConsoleAndStatsUsersOnlyShow(t *testing.T) {
	cfg := sessionConfig(1)
	cfg.AdminUsers, cfg.StatsUsers = []string{"admin"}, []string{"grafana"}
	s, _ := startValve(t, cfg)
	if _, err := consoleConn(t, s, "mallory"); err == nil || !strings.Contains(err.Error(), "28000") {
		t.Fatalf("a user in neither list logged in to the console: %v; want 28000", err)
	}
	stats, err := consoleConn(t, s, "grafana")
	if err != nil {
		t.Fatal(err)
	}
	if rows := show(t, stats, "SHOW VERSION"); len(rows) != 1 || !strings.HasPrefix(rows[0]["version"], "pgvalve") {
		t.Fatalf("SHOW VERSION = %v", rows)
	}
	_, err = stats.Exec(testutil.Context(t), "PAUSE")
	if err == nil || !strings.Contains(err.Error(), "42501") {
		t.Fatalf("a stats user's PAUSE: %v; want 42501", err)
	}
	if _, err := stats.Exec(testutil.Context(t), "SHOW NONSENSE"); err == nil {
		t.Fatal("SHOW NONSENSE succeeded")
	}
	if rows := show(t, stats, "SHOW STATE"); len(rows) == 0 {
		t.Fatal("the console stopped answering after an unknown command")
	}
}

func TestPsqlShowsPoolsThroughTheConsole(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	cfg := sessionConfig(1)
	cfg.AdminUsers = []string{"admin"}
	s, _ := startValve(t, cfg)
	out, err := exec.CommandContext(testutil.Context(t), psql, "-h", "127.0.0.1", "-p", fmt.Sprint(s.Addr.Port),
		"-U", "admin", "pgbouncer", "-c", "SHOW POOLS").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "cl_active | cl_waiting") {
		t.Fatalf("psql printed\n%s\nwant SHOW POOLS' columns", out)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
