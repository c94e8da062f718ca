package metrics

import (
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// Collector is a prometheus.Collector reading an observe.Source at each
// scrape. Labels are the pool's database and user, and small fixed sets
// (state, mode, reason, sqlstate): never a client's address or SQL.
type Collector struct {
	src     observe.Source
	version string
	start   time.Time
}

// NewCollector is a Collector over src.
func NewCollector(src observe.Source, opts ...Option) *Collector {
	c := &Collector{src: src, version: "unknown", start: time.Now()}
	for _, o := range opts {
		o(c)
	}
	return c
}

var (
	infoDesc = prometheus.NewDesc("pgvalve_info",
		"Always 1; the version running is its label.", []string{"version"}, nil)
	startDesc = prometheus.NewDesc("pgvalve_start_time_seconds",
		"When pgvalve started, in seconds since the epoch.", nil, nil)
	clientErrorsDesc = prometheus.NewDesc("pgvalve_client_errors_total",
		"Errors pgvalve itself sent to clients, by SQLSTATE.", []string{"sqlstate"}, nil)
	parkedDesc = prometheus.NewDesc("pgvalve_clients_parked",
		"Idle clients parked now: waiting with no goroutine or read buffer of their own (client_park_delay).", nil, nil)
	parksDesc = prometheus.NewDesc("pgvalve_client_parks_total",
		"Times an idle client parked.", nil, nil)
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- infoDesc
	ch <- startDesc
	ch <- clientErrorsDesc
	ch <- parkedDesc
	ch <- parksDesc
	for _, d := range poolDescs() {
		ch <- d
	}
	describeHosts(ch)
}

// Collect reads the source once and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, c.version)
	ch <- prometheus.MustNewConstMetric(startDesc, prometheus.GaugeValue, float64(c.start.UnixNano())/1e9)
	for _, p := range merge(c.src.Pools()) {
		collectPool(ch, &p, c.start)
	}
	collectHosts(ch, c.src.Hosts(), c.start)
	parking := c.src.Parking()
	ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(parking.Parked))
	ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(parksDesc, prometheus.CounterValue, float64(parking.Parks), c.start)
	for state, n := range bounded(c.src.ClientErrors(), sqlstate) {
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(clientErrorsDesc,
			prometheus.CounterValue, float64(n), c.start, state)
	}
}

var (
	sqlstate   = regexp.MustCompile(`^[0-9A-Z]{5}$`)
	reasonName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
)

// bounded keeps label values that match want and sums the others under
// "other", so a label's values stay a small set whatever the source says.
func bounded(m map[string]int64, want *regexp.Regexp) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, n := range m {
		if !want.MatchString(k) {
			k = "other"
		}
		out[k] += n
	}
	return out
}
