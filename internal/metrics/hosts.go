package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// hostDesc describes a metric of one host of one pool. The host label is
// an address from the configuration: a small, fixed set.
func hostDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append([]string{"database", "user", "host"}, extra...), nil)
}

var (
	hostStateDesc = hostDesc("pgvalve_host_state",
		"1 for the host's state (up; unreachable: its last login failed; down: out of the pool's choice; lagging: out of it for replay lag over max_replica_lag), 0 for the others.", "state")
	hostOutstandingDesc = hostDesc("pgvalve_host_leases_outstanding",
		"Leases held on the host now: the count the choice of host reads.")
	hostChosenDesc = hostDesc("pgvalve_host_leases_total",
		"Leases granted on the host.")
	hostLagDesc = hostDesc("pgvalve_host_replica_lag_seconds",
		"A standby's replay lag at its last health check (absent while unknown).")
)

var hostStates = []string{"up", "unreachable", "down", "lagging"}

func describeHosts(ch chan<- *prometheus.Desc) {
	ch <- hostStateDesc
	ch <- hostOutstandingDesc
	ch <- hostChosenDesc
	ch <- hostLagDesc
}

func collectHosts(ch chan<- prometheus.Metric, hosts []observe.Host, start time.Time) {
	for _, h := range hosts {
		for _, s := range hostStates {
			ch <- prometheus.MustNewConstMetric(hostStateDesc, prometheus.GaugeValue, b2f(h.State == s), h.Database, h.User, h.Host, s)
		}
		ch <- prometheus.MustNewConstMetric(hostOutstandingDesc, prometheus.GaugeValue, float64(h.Outstanding), h.Database, h.User, h.Host)
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(hostChosenDesc, prometheus.CounterValue, float64(h.Chosen), start,
			h.Database, h.User, h.Host)
		if h.LagKnown {
			ch <- prometheus.MustNewConstMetric(hostLagDesc, prometheus.GaugeValue, h.Lag.Seconds(), h.Database, h.User, h.Host)
		}
	}
}
