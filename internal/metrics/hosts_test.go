package metrics

import (
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

func TestEachHostOfAPoolHasItsStateAndLeases(t *testing.T) {
	src := appSource()
	src.hosts = []observe.Host{
		{Database: "app", User: "app", Host: "10.0.0.5:5432", State: "up", Outstanding: 3, Chosen: 70},
		{Database: "app", User: "app", Host: "10.0.0.6:5432", State: "down", Chosen: 12},
		{Database: "app", User: "app", Host: "10.0.0.7:5432", State: "lagging", Lag: 2500 * time.Millisecond, LagKnown: true},
	}
	fams := scrapeText(t, src)
	host := func(h string, kv ...string) map[string]string {
		return app(append([]string{"host", h}, kv...)...)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pgvalve_host_state", host("10.0.0.5:5432", "state", "up"), 1},
		{"pgvalve_host_state", host("10.0.0.5:5432", "state", "down"), 0},
		{"pgvalve_host_state", host("10.0.0.6:5432", "state", "down"), 1},
		{"pgvalve_host_state", host("10.0.0.6:5432", "state", "unreachable"), 0},
		{"pgvalve_host_leases_outstanding", host("10.0.0.5:5432"), 3},
		{"pgvalve_host_leases_total", host("10.0.0.6:5432"), 12},
		{"pgvalve_host_state", host("10.0.0.7:5432", "state", "lagging"), 1},
		{"pgvalve_host_state", host("10.0.0.7:5432", "state", "up"), 0},
		{"pgvalve_host_replica_lag_seconds", host("10.0.0.7:5432"), 2.5},
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if m := find(fams, "pgvalve_host_replica_lag_seconds", host("10.0.0.5:5432")); m != nil {
		t.Errorf("a host whose lag is unknown has a lag series: %v", m)
	}
}
