package main

import (
	"fmt"
	"testing"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// RELOAD in the admin console rereads --config as SIGHUP does: a bigger
// pool_size serves a client that was queued for the smaller one.
func TestConsoleRELOADPicksUpAChangedPoolSize(t *testing.T) {
	admin := `admin_users = ["admin"]`
	path := writeFile(t, configText(1, admin))
	c := startChild(t, "--config", path)
	holder := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, holder, "the first client") // holds the only server (session pooling)
	queued := make(chan struct{}, 1)
	done := queuedQuery(t, connect(t, c.url(pgtest.TestDatabase), queued), queued)

	rewrite(t, path, configText(2, admin))
	console := connect(t, fmt.Sprintf("postgres://admin@127.0.0.1:%s/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol", c.port), nil)
	mark := len(c.log.String())
	if _, err := console.Exec(testutil.Context(t), "RELOAD"); err != nil {
		t.Fatalf("RELOAD: %v", err)
	}
	c.waitLog(t, mark, "pool_size: 1 → 2")
	wait(t, done, "the queued client's query once RELOAD grew the pool")
	if n := backends(t); n != 2 {
		t.Fatalf("%d server connections, want 2 after RELOAD", n)
	}
	exec1(t, holder, "the client connected before RELOAD")
	c.alive(t)
}
