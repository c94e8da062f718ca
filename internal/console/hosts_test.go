package console_test

import (
	"slices"
	"testing"
	"time"
)

func TestShowHostsListsEachHostWithItsStateAndCounts(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	r := run(t, connect(t, s, "stats"), "SHOW HOSTS")
	want := [][]string{
		{"app", "app", "10.0.0.5:5432", "up", "primary", "<null>", "1", "2", "0", "0", "9", "<null>"},
		{"app", "app", "10.0.0.6:5432", "down", "standby", "<null>", "1", "0", "0", "0", "0", "connection refused"},
		{"app", "app", "10.0.0.7:5432", "lagging", "standby", "2500.000", "2", "1", "0", "0", "4",
			"replay lags 2.5s behind the primary, more than max_replica_lag (1s)"},
	}
	if !slices.EqualFunc(r.rows, want, slices.Equal) {
		t.Fatalf("SHOW HOSTS rows %q; want %q", r.rows, want)
	}
}
