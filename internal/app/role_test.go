package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// followRole is a role the test user may SET ROLE to.
const followRole = "pgvalve_follow_role"

func createFollowRole(t *testing.T) {
	t.Helper()
	su := direct(t)
	testutil.MustExec(t, su, "drop role if exists "+followRole)
	testutil.MustExec(t, su, "create role "+followRole+" nologin; grant "+followRole+" to "+cluster.User)
	t.Cleanup(func() {
		_, _ = su.Exec(context.Background(), "drop role if exists "+followRole)
	})
}

// currentUser is current_user on c's server, and that server's pid.
func currentUser(t *testing.T, c *pgx.Conn) (string, int) {
	t.Helper()
	var user string
	var pid int
	if err := c.QueryRow(testutil.Context(t), "select current_user::text, pg_backend_pid()").Scan(&user, &pid); err != nil {
		t.Fatal(err)
	}
	return user, pid
}

// SET ROLE follows its client and RESET ROLE ends it; the next client of
// the same server runs as itself, not as the role, also after the client
// leaves with it set (RESET ALL does not reset a role: pgvalve must).
func TestASetRoleFollowsItsClientAndNeverReachesAnother(t *testing.T) {
	createFollowRole(t)
	s, url := startValve(t, txnConfig(1))
	a, b := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, a, "set role "+followRole)
	userA, pidA := currentUser(t, a)
	if userA != followRole {
		t.Fatalf("a runs as %q after SET ROLE", userA)
	}
	for range 5 {
		userB, pidB := currentUser(t, b)
		if pidB != pidA {
			t.Fatalf("pool of one: b got backend %d, a had %d", pidB, pidA)
		}
		if userB != cluster.User {
			t.Fatalf("b runs as %q on the server a left, want %q", userB, cluster.User)
		}
		if u, _ := currentUser(t, a); u != followRole {
			t.Fatalf("a runs as %q after b, want its role", u)
		}
	}
	testutil.MustExec(t, a, "reset role")
	if u, _ := currentUser(t, a); u != cluster.User {
		t.Fatalf("a runs as %q after RESET ROLE", u)
	}
	// Only a superuser may SET SESSION AUTHORIZATION: the failure leaves
	// nothing to follow, and RESET SESSION AUTHORIZATION changes nothing.
	_, err := a.Exec(testutil.Context(t), "set session authorization "+followRole)
	wantError(t, err, "42501")
	testutil.MustExec(t, a, "reset session authorization")
	for range 5 {
		if u, _ := currentUser(t, a); u != cluster.User {
			t.Fatalf("a runs as %q after a refused SET SESSION AUTHORIZATION", u)
		}
	}
	testutil.MustExec(t, a, "set role "+followRole)
	if err := a.Close(testutil.Context(t)); err != nil {
		t.Fatal(err)
	}
	s.WaitIdle(t, 10*time.Second)
	if u, _ := currentUser(t, b); u != cluster.User {
		t.Fatalf("b runs as %q after a left with a role set", u)
	}
}
