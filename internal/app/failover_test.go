package app_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// A primary fails and its standby is promoted: a read-write route follows
// it without a restart of pgvalve, and the write in flight at the moment
// of failure fails without being replayed on the new primary.
func TestAReadWriteRouteFollowsAPromotedStandby(t *testing.T) {
	primary, standby := primaryAndStandby(t, "create table failover (n int primary key)")
	_, url := pairValve(t, primary, standby, "read-write", func(cfg *config.Config) { cfg.QueryWaitTimeout = 30 * time.Second })
	ctx := testutil.Context(t)

	writer := testutil.Connect(t, url)
	var port int
	if err := writer.QueryRow(ctx, "insert into failover values (1) returning inet_server_port()").Scan(&port); err != nil || port != primary.Port {
		t.Fatalf("a write went to port %d (%v); want the primary, %d", port, err, primary.Port)
	}
	inFlight := testutil.Connect(t, url)
	tx, err := inFlight.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "insert into failover values (2)"); err != nil {
		t.Fatal(err)
	}

	if err := primary.StopServer("immediate"); err != nil {
		t.Fatal(err)
	}
	err = tx.Commit(ctx)
	wantCode(t, err, "08006") // its server is lost; the transaction is not retried elsewhere

	if err := standby.Promote(); err != nil {
		t.Fatal(err)
	}
	// A new client's write, through the same pgvalve, lands on the new
	// primary once its check finds it writable.
	after := testutil.Connect(t, url)
	if err := after.QueryRow(ctx, "insert into failover values (3) returning inet_server_port()").Scan(&port); err != nil || port != standby.Port {
		t.Fatalf("a write after the promotion went to port %d (%v); want the promoted standby, %d", port, err, standby.Port)
	}
	direct := testutil.Connect(t, standby.URL(standby.User, standby.Password, standby.Database))
	rows, err := direct.Query(ctx, "select n from failover order by n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	// Row 1 committed before the failure (synchronous_commit may lose it
	// on an immediate stop before it streamed, so it is not asserted);
	// row 2 was in flight and must not be there; row 3 came after.
	for _, n := range got {
		if n == 2 {
			t.Fatalf("the new primary holds %v: the transaction in flight was replayed", got)
		}
	}
	if got[len(got)-1] != 3 {
		t.Fatalf("the new primary holds %v; want the write after the promotion", got)
	}
}

// prefer-standby reads from the standby while it is up, and from the
// primary once it is not.
func TestPreferStandbyReadsFromTheStandbyAndFallsBackOnThePrimary(t *testing.T) {
	primary, standby := primaryAndStandby(t, "")
	_, url := pairValve(t, primary, standby, "prefer-standby", nil)
	ctx := testutil.Context(t)
	reader := testutil.Connect(t, url)
	port := func() int { return readPort(t, reader) }
	// Once each host's role is known, the standby serves every read.
	testutil.Eventually(t, "reads to settle on the standby", func() bool { return port() == standby.Port })
	for range 10 {
		if p := port(); p != standby.Port {
			t.Fatalf("a read went to port %d while the standby (%d) is up", p, standby.Port)
		}
	}
	if err := standby.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "reads to move to the primary", func() bool {
		var p int
		return reader.QueryRow(ctx, "select inet_server_port()").Scan(&p) == nil && p == primary.Port
	})
}

// primaryAndStandby starts a primary, runs setup on it (when given), and
// then a streaming standby of it.
func primaryAndStandby(t *testing.T, setup string) (primary, standby *pgtest.Cluster) {
	t.Helper()
	primary, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	if setup != "" {
		c := testutil.Connect(t, primary.URL(primary.User, primary.Password, primary.Database))
		if _, err := c.Exec(testutil.Context(t), setup); err != nil {
			t.Fatal(err)
		}
	}
	if standby, err = primary.StartStandby(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	return primary, standby
}

// pairValve runs pgvalve with a transaction-pooled route "app" over the
// primary, then the standby: see valveOver.
func pairValve(t *testing.T, primary, standby *pgtest.Cluster, attrs string, tune func(*config.Config)) (*valvetest.Server, string) {
	t.Helper()
	return valveOver(t, 4, attrs, tune, primary, standby)
}

// valveOver runs pgvalve with a transaction-pooled route "app" over hosts,
// logging in as the first host's user, each host checked every 50ms, with
// tune's changes, and returns it and the URL of "app".
func valveOver(t *testing.T, poolSize int, attrs string, tune func(*config.Config), hosts ...*pgtest.Cluster) (*valvetest.Server, string) {
	t.Helper()
	cfg := hostsRoute(poolSize, attrs, hosts...)
	first := hosts[0]
	route := cfg.Databases["app"]
	route.Upstream = first.URL(first.User, first.Password, first.Database)
	cfg.Databases["app"] = route
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	s, _ := startValve(t, cfg)
	return s, s.URL(first.User, first.Password, "app")
}

// readPort is the port of the server that answers c's next query: which
// host served it.
func readPort(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var p int
	if err := c.QueryRow(testutil.Context(t), "select inet_server_port()").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}
