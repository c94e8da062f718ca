package app_test

import (
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// A [users.NAME] entry sets the pool mode of that server user's pools
// over the global one, as PgBouncer's [users] does; a reload that drops it
// gives new clients the global mode again.
func TestAUsersPoolModeWinsOverTheGlobalOne(t *testing.T) {
	cfg := txnConfig(2)
	cfg.AdminUsers = []string{"admin"}
	cfg.Users = map[string]config.User{cluster.User: {Name: cluster.User, PoolMode: config.PoolSession}}
	s, url := startValve(t, cfg)
	testutil.Connect(t, url) // makes the pool
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	mode := func() string {
		for _, p := range show(t, admin, "SHOW POOLS") {
			if p["user"] == cluster.User {
				return p["pool_mode"]
			}
		}
		return ""
	}
	if m := mode(); m != "session" {
		t.Fatalf("the user's pool is in %q pooling; want session, its own", m)
	}
	next := cfg
	next.Users = map[string]config.User{}
	s.App.Reload(next)
	testutil.Connect(t, url)
	if m := mode(); m != "transaction" {
		t.Fatalf("after the reload dropped the entry: %q pooling; want transaction, the global one", m)
	}
}

// A [users.NAME] max_user_connections caps that user's servers below the
// pool's size, and the global one does not apply to it.
func TestAUsersMaxUserConnectionsCapsItsServers(t *testing.T) {
	admin := direct(t)
	waitNoBackends(t, admin)
	cfg := txnConfig(4)
	cfg.MaxUserConnections = 3
	cfg.Users = map[string]config.User{cluster.User: {Name: cluster.User, MaxUserConnections: 1}}
	cfg.QueryWaitTimeout = 10 * time.Second
	_, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	first := testutil.Connect(t, url)
	tx, err := first.Begin(ctx) // holds the one server the user may have
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	second := testutil.Connect(t, url)
	done := make(chan error, 1)
	go func() { _, err := second.Exec(ctx, "select 2"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a second transaction ran (%v) while the user's only server was held", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n, err := backendsOf(ctx, admin, cluster.User); err != nil || n != 1 {
		t.Fatalf("%d servers of the user at PostgreSQL (%v); want 1, its cap", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting transaction, once the server was free: %v", err)
	}
}
