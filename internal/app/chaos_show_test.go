package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// checkShowsAtRest checks what the admin console shows once a chaos
// scenario is over and the pool is at rest: no client waiting or holding
// a server, no server in use, nothing diagnosed, and SHOW POOLS' idle
// servers equal to pg_stat_activity's.
func checkShowsAtRest(t *testing.T, s *valvetest.Server, admin *pgx.Conn) {
	t.Helper()
	ctx := testutil.Context(t)
	console, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Errorf("console login after the scenario: %v", err)
		return
	}
	defer console.Close(context.Background()) // before pgvalve stops and leaks are checked
	var problems []string
	// The pool can only be read at rest between two looks at
	// pg_stat_activity that agree with it.
	testutil.EventuallyWithin(t, 15*time.Second, "SHOW POOLS to agree with pg_stat_activity", func() bool {
		problems = problems[:0]
		backends, err := backendsOf(ctx, admin, cluster.User)
		if err != nil {
			problems = append(problems, err.Error())
			return false
		}
		for _, p := range show(t, console, "SHOW POOLS") {
			if p["database"] != poolDB() {
				continue
			}
			for col, want := range map[string]string{"cl_waiting": "0", "sv_active": "0", "sv_login": "0",
				"maxwait": "0", "maxwait_us": "0", "sv_idle": fmt.Sprint(backends)} {
				if p[col] != want {
					problems = append(problems, fmt.Sprintf("SHOW POOLS %s = %s, want %s", col, p[col], want))
				}
			}
		}
		return len(problems) == 0
	})
	for _, cmd := range []string{"SHOW HOLDERS", "SHOW DIAGNOSIS", "SHOW SERVERS"} {
		if rows := show(t, console, cmd); len(rows) != 0 {
			problems = append(problems, fmt.Sprintf("%s at rest: %v", cmd, rows))
		}
	}
	for _, c := range show(t, console, "SHOW CLIENTS") {
		if c["database"] == poolDB() {
			problems = append(problems, fmt.Sprintf("SHOW CLIENTS lists a client of the pool after its clients left: %v", c))
		}
	}
	for _, l := range show(t, console, "SHOW LATENCY") {
		if l["database"] == poolDB() && l["kind"] == "query" && l["total_count"] == "0" {
			problems = append(problems, "SHOW LATENCY counted no request in the whole scenario")
		}
	}
	reportSome(t, "SHOW at rest", problems)
}
