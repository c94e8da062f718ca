package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// poolDesc describes a metric of one pool, labelled by its database and
// user and, for some, one more label from a small fixed set.
func poolDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append([]string{"database", "user"}, extra...), nil)
}

var (
	clientsDesc = poolDesc("pgvalve_clients",
		"Clients by state: active (holding a server or idle), waiting (queued for a server), login.", "state")
	serversDesc = poolDesc("pgvalve_servers",
		"Server connections by state: active (leased), idle, used (to be checked), login (dialing), closing.", "state")
	modeDesc = poolDesc("pgvalve_pool_mode",
		"Always 1; the pool mode (session, transaction, statement) is its label.", "mode")
	closedDesc = poolDesc("pgvalve_server_connections_closed_total",
		"Server connections ended, by reason (lost ones included).", "reason")
)

// series is one number of a pool: its description, type, the value of
// its extra label if it has one, and how to read it.
type series struct {
	desc  *prometheus.Desc
	vt    prometheus.ValueType
	extra string
	of    func(p *observe.Pool) float64
}

func gauge(name, help string, of func(p *observe.Pool) float64) series {
	return series{poolDesc(name, help), prometheus.GaugeValue, "", of}
}

func counter(name, help string, of func(p *observe.Pool) float64) series {
	return series{poolDesc(name, help), prometheus.CounterValue, "", of}
}

func state(desc *prometheus.Desc, s string, of func(p *observe.Pool) int) series {
	return series{desc, prometheus.GaugeValue, s, func(p *observe.Pool) float64 { return float64(of(p)) }}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var poolSeries = []series{
	state(clientsDesc, "active", func(p *observe.Pool) int { return p.ClientsActive }),
	state(clientsDesc, "waiting", func(p *observe.Pool) int { return p.ClientsWaiting }),
	state(clientsDesc, "login", func(p *observe.Pool) int { return p.ClientsLogin }),
	state(serversDesc, "active", func(p *observe.Pool) int { return p.ServersActive }),
	state(serversDesc, "idle", func(p *observe.Pool) int { return p.ServersIdle }),
	state(serversDesc, "used", func(p *observe.Pool) int { return p.ServersUsed }),
	state(serversDesc, "login", func(p *observe.Pool) int { return p.ServersLogin }),
	state(serversDesc, "closing", func(p *observe.Pool) int { return p.ServersClosing }),

	gauge("pgvalve_pool_pinned_clients", "Clients that session state (advisory locks, temporary tables, ...) keeps on their server across transactions; max_pinned_servers bounds it.",
		func(p *observe.Pool) float64 { return float64(p.Pinned) }),
	gauge("pgvalve_pool_listeners", "Shared listening connections open for LISTEN in transaction pooling (0 or 1), outside pool_size.",
		func(p *observe.Pool) float64 { return float64(p.Listeners) }),
	gauge("pgvalve_pool_size", "The pool_size in force: most servers the pool leases at once, besides its reserve.",
		func(p *observe.Pool) float64 { return float64(p.Size) }),
	gauge("pgvalve_pool_reserve_size", "The reserve_pool_size in force.",
		func(p *observe.Pool) float64 { return float64(p.ReserveSize) }),
	gauge("pgvalve_pool_paused", "1 while the pool is paused (PAUSE holds new transactions).",
		func(p *observe.Pool) float64 { return b2f(p.Paused) }),
	gauge("pgvalve_pool_draining", "1 while the pool is retired by a reload and only serves the clients it has.",
		func(p *observe.Pool) float64 { return b2f(p.Draining) }),
	gauge("pgvalve_dial_failing", "1 when the pool's last attempt to dial a server failed.",
		func(p *observe.Pool) float64 { return b2f(p.LastDialError != "") }),
	gauge("pgvalve_max_wait_seconds", "How long the oldest waiting client has waited so far; 0 when none waits.",
		func(p *observe.Pool) float64 { return p.MaxWait.Seconds() }),

	counter("pgvalve_acquires_total", "Servers leased to clients.",
		func(p *observe.Pool) float64 { return float64(p.Acquires) }),
	counter("pgvalve_waits_total", "Acquires that had to wait for a server.",
		func(p *observe.Pool) float64 { return float64(p.Waits) }),
	counter("pgvalve_wait_timeouts_total", "Clients that gave up waiting for a server (query_wait_timeout).",
		func(p *observe.Pool) float64 { return float64(p.WaitTimeouts) }),
	counter("pgvalve_dial_errors_total", "Failed attempts to connect to a server.",
		func(p *observe.Pool) float64 { return float64(p.DialErrors) }),
	counter("pgvalve_transactions_total", "Transactions run.",
		func(p *observe.Pool) float64 { return float64(p.Xacts) }),
	counter("pgvalve_queries_total", "Requests run, each up to its ReadyForQuery.",
		func(p *observe.Pool) float64 { return float64(p.Queries) }),
	counter("pgvalve_received_bytes_total", "Bytes received from clients.",
		func(p *observe.Pool) float64 { return float64(p.BytesReceived) }),
	counter("pgvalve_sent_bytes_total", "Bytes sent to clients.",
		func(p *observe.Pool) float64 { return float64(p.BytesSent) }),
	counter("pgvalve_wait_seconds_total", "Time clients spent waiting for a server.",
		func(p *observe.Pool) float64 { return p.WaitTime.Seconds() }),
	counter("pgvalve_query_seconds_total", "Time spent in requests.",
		func(p *observe.Pool) float64 { return p.QueryTime.Seconds() }),
	counter("pgvalve_transaction_seconds_total", "Time spent in transactions.",
		func(p *observe.Pool) float64 { return p.XactTime.Seconds() }),
}

func poolDescs() []*prometheus.Desc {
	ds := []*prometheus.Desc{modeDesc, closedDesc}
	seen := map[*prometheus.Desc]bool{}
	for _, s := range poolSeries {
		if !seen[s.desc] { // the state-labelled ones appear once per state
			seen[s.desc] = true
			ds = append(ds, s.desc)
		}
	}
	return append(ds, latencyDescs[:]...)
}

func collectPool(ch chan<- prometheus.Metric, p *pool, start time.Time) {
	db, user := p.Database, p.User
	for _, s := range poolSeries {
		lv := []string{db, user}
		if s.extra != "" {
			lv = append(lv, s.extra)
		}
		if s.vt == prometheus.CounterValue {
			ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(s.desc, s.vt, s.of(&p.Pool), start, lv...)
		} else {
			ch <- prometheus.MustNewConstMetric(s.desc, s.vt, s.of(&p.Pool), lv...)
		}
	}
	if p.Mode != "" {
		ch <- prometheus.MustNewConstMetric(modeDesc, prometheus.GaugeValue, 1, db, user, p.Mode)
	}
	for r, n := range bounded(p.ServersClosed, reasonName) {
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(closedDesc,
			prometheus.CounterValue, float64(n), start, db, user, r)
	}
	for k, d := range latencyDescs {
		if p.latency[k] != nil {
			ch <- newLatency(d, []string{db, user}, p.latency[k], start)
		}
	}
}
