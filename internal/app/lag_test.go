package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// A standby whose replay falls further behind than max_replica_lag leaves
// the choice of a route that reads from it, and comes back once it has
// caught up.
func TestALaggingStandbyLeavesTheChoiceUntilItCatchesUp(t *testing.T) {
	primary, standby := primaryAndStandby(t, "create table lag (n int)")
	s, url := pairValve(t, primary, standby, "prefer-standby", func(cfg *config.Config) {
		cfg.MaxReplicaLag = 300 * time.Millisecond
		cfg.AdminUsers = []string{"admin"}
	})
	ctx := testutil.Context(t)
	reader := testutil.Connect(t, url)
	port := func() int { return readPort(t, reader) }
	testutil.Eventually(t, "reads to settle on the standby", func() bool { return port() == standby.Port })

	// The standby replays one transaction, so that its lag can be told,
	// and then stops replaying while the primary goes on.
	writer := testutil.Connect(t, primary.URL(primary.User, primary.Password, primary.Database))
	onStandby := testutil.Connect(t, standby.SuperuserURL(standby.Database))
	testutil.MustExec(t, writer, "insert into lag values (1)")
	testutil.Eventually(t, "the standby to replay the first row", func() bool {
		var n int
		return onStandby.QueryRow(ctx, "select count(*) from lag").Scan(&n) == nil && n == 1
	})
	testutil.MustExec(t, onStandby, "select pg_wal_replay_pause()")
	testutil.MustExec(t, writer, "insert into lag values (2)")

	testutil.Eventually(t, "reads to move to the primary", func() bool { return port() == primary.Port })
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	rows := show(t, admin, "SHOW HOSTS")
	if len(rows) != 2 || rows[1]["state"] != "lagging" || rows[1]["lag_ms"] == "" ||
		!strings.Contains(rows[1]["last_error"], "max_replica_lag") {
		t.Fatalf("SHOW HOSTS with the standby paused: %v; want it lagging, with its lag and why", rows)
	}
	for range 5 {
		if p := port(); p != primary.Port {
			t.Fatalf("a read went to port %d while the standby lags; want the primary, %d", p, primary.Port)
		}
	}

	testutil.MustExec(t, onStandby, "select pg_wal_replay_resume()")
	testutil.Eventually(t, "reads to come back to the standby once it caught up", func() bool { return port() == standby.Port })
	rows = show(t, admin, "SHOW HOSTS")
	if rows[1]["state"] != "up" || rows[1]["lag_ms"] != "0.000" {
		t.Fatalf("SHOW HOSTS after the standby caught up: %v; want it up with no lag", rows)
	}
}
