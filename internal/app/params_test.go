package app_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// connectWith connects with extra startup parameters, in transaction
// pooling's safe mode for pgx (no statement cache needed here).
func connectWith(t *testing.T, url string, params map[string]string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	c, err := pgx.ConnectConfig(testutil.Context(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func settings(t *testing.T, c *pgx.Conn, names ...string) string {
	t.Helper()
	out := ""
	for _, n := range names {
		var v string
		if err := c.QueryRow(testutil.Context(t), "select current_setting($1)", n).Scan(&v); err != nil {
			t.Fatal(err)
		}
		out += n + "=" + v + ";"
	}
	return out
}

// Clients sharing one server in transaction pooling each see their own
// settings: startup parameters, options, and what they SET later.
func TestEachClientSeesOnlyItsOwnSettingsOnASharedServer(t *testing.T) {
	_, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	a := connectWith(t, url, map[string]string{
		"application_name": "client_a", "TimeZone": "Asia/Tokyo",
		"options": "-c search_path=a_schema,public -c statement_timeout=4321",
	})
	b := connectWith(t, url, map[string]string{"application_name": "client_b"})
	names := []string{"application_name", "TimeZone", "search_path", "statement_timeout", "work_mem"}
	defaults := settings(t, b, names...)
	wantA := "application_name=client_a;TimeZone=Asia/Tokyo;search_path=a_schema,public;statement_timeout=4321ms;"
	for round := range 3 {
		if got := settings(t, a, names[:4]...); got != wantA {
			t.Fatalf("round %d: client a sees %s, want %s", round, got, wantA)
		}
		if got := settings(t, b, names...); got != defaults {
			t.Fatalf("round %d: client b sees %s, want its own %s", round, got, defaults)
		}
	}
	// Later changes: a reported parameter follows its client; anything a
	// client SETs never reaches the other.
	if _, err := a.Exec(ctx, "set TimeZone = 'Europe/Paris'; set work_mem = '7MB'"); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if got := settings(t, b, names...); got != defaults {
			t.Fatalf("round %d after a's SET: client b sees %s, want %s", round, got, defaults)
		}
		if got := settings(t, a, "TimeZone"); got != "TimeZone=Europe/Paris;" {
			t.Fatalf("round %d: client a lost its SET TimeZone: %s", round, got)
		}
	}
	var pids []int
	for _, c := range []*pgx.Conn{a, b} {
		var pid int
		if err := c.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if pids[0] != pids[1] {
		t.Fatalf("a pool of one must share its server: %v", pids)
	}
}
