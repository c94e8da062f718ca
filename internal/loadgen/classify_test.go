package loadgen

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// Each class from a real failure of a real login or query.
func TestFailuresAreClassedAsTheAppSeesThem(t *testing.T) {
	ctx := testutil.Context(t)
	connect := func(url string) error {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	// A role allowed one connection: the second login is refused with
	// 53300, as PostgreSQL refuses past max_connections.
	su := testutil.Connect(t, cluster.SuperuserURL(cluster.Database))
	testutil.MustExec(t, su, "DROP ROLE IF EXISTS lg_one")
	testutil.MustExec(t, su, "CREATE ROLE lg_one LOGIN PASSWORD 'lg-one-pw' CONNECTION LIMIT 1")
	t.Cleanup(func() { _, _ = su.Exec(context.Background(), "DROP ROLE lg_one") })
	oneURL := cluster.URL("lg_one", "lg-one-pw", cluster.Database)
	testutil.Connect(t, oneURL) // its one connection, held
	conn := testutil.Connect(t, userURL())
	_, divErr := conn.Exec(ctx, "select 1/0")

	for _, c := range []struct {
		name      string
		err       error
		acquiring bool
		want      Failure
	}{
		{"nothing listens", connect(refusedURL(t)), true, Failure{Class: ConnectRefused}},
		{"the server never answers", connect(silentURL(t)), true, Failure{Class: ConnectTimeout}},
		{"past the connection limit", connect(oneURL), true, Failure{TooManyConns, "53300"}},
		{"an error from the server", divErr, false, Failure{ServerError, "22012"}},
		{"the app's pool had nothing in time", fmt.Errorf("acquire: %w", context.DeadlineExceeded), true, Failure{Class: PoolTimeout}},
		{"the app gave up on an answer", fmt.Errorf("query: %w", context.DeadlineExceeded), false, Failure{Class: QueryTimeout}},
	} {
		if c.err == nil {
			t.Errorf("%s: no error to classify", c.name)
			continue
		}
		if got := Classify(c.err, c.acquiring); got != c.want {
			t.Errorf("%s: %v classed %+v; want %+v", c.name, c.err, got, c.want)
		}
	}
}

// A connection that breaks under a query is lost, not a server error.
func TestAConnectionKilledUnderAQueryIsLost(t *testing.T) {
	ctx := testutil.Context(t)
	victim := testutil.Connect(t, userURL())
	var pid int
	if err := victim.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	su := testutil.Connect(t, cluster.SuperuserURL(cluster.Database))
	done := make(chan error, 1)
	go func() { _, err := victim.Exec(ctx, "select pg_sleep(30)"); done <- err }()
	testutil.Eventually(t, "the query to run", func() bool {
		var active bool
		_ = su.QueryRow(ctx, "select state = 'active' from pg_stat_activity where pid = $1", pid).Scan(&active)
		return active
	})
	testutil.MustExec(t, su, fmt.Sprintf("select pg_terminate_backend(%d)", pid))
	err := <-done
	// PostgreSQL says why (57P01) before it closes: an app sees that
	// FATAL as a server error with its code.
	if got := Classify(err, false); got != (Failure{ServerError, "57P01"}) && got.Class != ConnectionLost {
		t.Fatalf("%v classed %+v; want a server error 57P01 or a lost connection", err, got)
	}
}
