package pgcluster_test

import (
	"context"
	"testing"

	"github.com/pgvalve/pgvalve/internal/pgcluster"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestAStandbyStreamsThePrimarysWritesAndBecomesAPrimaryWhenPromoted(t *testing.T) {
	primary, err := pgcluster.Start(pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	standby, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	ctx := testutil.Context(t)
	onPrimary := testutil.Connect(t, primary.URL(primary.User, primary.Password, primary.Database))
	if _, err := onPrimary.Exec(ctx, "create table streamed (n int); insert into streamed values (42)"); err != nil {
		t.Fatal(err)
	}
	onStandby := testutil.Connect(t, standby.URL(standby.User, standby.Password, standby.Database))
	if got := queryString(t, onStandby, "select pg_is_in_recovery()::text"); got != "true" {
		t.Fatalf("the standby says pg_is_in_recovery() = %s", got)
	}
	testutil.Eventually(t, "the primary's row to reach the standby", func() bool {
		var n int
		return onStandby.QueryRow(ctx, "select n from streamed").Scan(&n) == nil && n == 42
	})
	if err := standby.Promote(); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, onStandby, "select pg_is_in_recovery()::text"); got != "false" {
		t.Fatalf("after promotion the standby says pg_is_in_recovery() = %s", got)
	}
	if _, err := onStandby.Exec(context.Background(), "insert into streamed values (43)"); err != nil {
		t.Fatalf("a write on the promoted standby: %v", err)
	}
}
