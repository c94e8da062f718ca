// Package metrics exposes pgvalve's state to Prometheus. Nothing here is
// on the hot path: a custom collector reads an observe.Source at each
// scrape, and the latency histograms are exported straight from the
// pools' live observe.Hist counts.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// Option sets something NewHandler and NewRegistry report.
type Option func(*Collector)

// WithVersion sets pgvalve_info's version label.
func WithVersion(v string) Option { return func(c *Collector) { c.version = v } }

// WithStart sets when pgvalve started: pgvalve_start_time_seconds and the
// created timestamp of every counter and histogram (they count since
// then). The default is when the collector was made.
func WithStart(t time.Time) Option { return func(c *Collector) { c.start = t } }

// NewRegistry is a private registry (never the global default) holding a
// Collector over src and the standard Go and process collectors.
func NewRegistry(src observe.Source, opts ...Option) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src, opts...),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// NewHandler serves GET /metrics from NewRegistry(src, opts...), in the
// exposition format the scraper asks for (text, OpenMetrics, or protobuf,
// which is the one that carries native histograms).
func NewHandler(src observe.Source, opts ...Option) http.Handler {
	reg := NewRegistry(src, opts...)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		// A scrape answers even when a collector fails, rather than
		// leaving a gap in every series.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}
