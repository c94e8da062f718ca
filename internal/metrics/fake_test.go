package metrics

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// fakeSource is a Source with set views: what is exported from them is
// pgvalve's own choice, not PostgreSQL's behaviour, so a fake is enough.
type fakeSource struct {
	pools   []observe.Pool
	clients []observe.Client
	errors  map[string]int64
	parking observe.Parking
	hosts   []observe.Host
}

func (f *fakeSource) Pools() []observe.Pool          { return f.pools }
func (f *fakeSource) Clients() []observe.Client      { return f.clients }
func (f *fakeSource) Servers() []observe.Server      { return nil }
func (f *fakeSource) ClientErrors() map[string]int64 { return f.errors }
func (f *fakeSource) Diagnosis() []string            { return nil }
func (f *fakeSource) Parking() observe.Parking       { return f.parking }
func (f *fakeSource) Hosts() []observe.Host          { return f.hosts }

var started = time.Unix(1_800_000_000, 0)

// appPool is a busy pool of database app and user app with one client
// waiting, whose histograms hold known observations.
func appPool() observe.Pool {
	lat := new([observe.NumKinds]observe.Hist)
	for _, d := range []time.Duration{0, 0, 3 * time.Millisecond} {
		lat[observe.Wait].ObserveAt(d, started)
	}
	for _, d := range []time.Duration{200 * time.Microsecond, 1500 * time.Microsecond, time.Second, 5 * time.Second} {
		lat[observe.Query].ObserveAt(d, started)
		lat[observe.Xact].ObserveAt(2*d, started)
	}
	return observe.Pool{
		Database: "app", User: "app", Mode: "transaction", Size: 20, ReserveSize: 2,
		ClientsActive: 7, ClientsWaiting: 1, ClientsLogin: 2,
		ServersActive: 5, ServersIdle: 3, ServersUsed: 1, ServersLogin: 1,
		MaxWait:  1500 * time.Millisecond,
		Acquires: 1000, Waits: 40, WaitTimeouts: 2, DialErrors: 3,
		Xacts: 900, Queries: 2500, BytesReceived: 1 << 20, BytesSent: 5 << 20,
		WaitTime: 3 * time.Second, QueryTime: 42 * time.Second, XactTime: 60 * time.Second,
		ServersClosed: map[string]int64{"idle_timeout": 4, "lost": 1},
		LastDialError: "connection refused",
		Latency:       lat,
	}
}

func appSource() *fakeSource {
	return &fakeSource{
		pools: []observe.Pool{appPool(), {Database: "reports", User: "analyst", Mode: "session", Size: 5, Paused: true}},
		clients: []observe.Client{{
			ID: 1, Addr: "10.1.2.3:51234", User: "app", Database: "app", State: "waiting",
			Query: "SELECT secret FROM t",
		}},
		errors:  map[string]int64{"53300": 2, "08P01": 1},
		parking: observe.Parking{Parked: 7, Parks: 31},
	}
}

// get scrapes h's /metrics with the given Accept header.
func get(t *testing.T, h http.Handler, accept string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	return resp
}

// scrapeText scrapes src as Prometheus's text format, parsed strictly
// (legacy metric and label names).
func scrapeText(t *testing.T, src *fakeSource) map[string]*dto.MetricFamily {
	t.Helper()
	resp := get(t, NewHandler(src, WithVersion("1.2.3"), WithStart(started)), "")
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// scrapeProto scrapes src as delimited protobuf, the format that carries
// native histograms.
func scrapeProto(t *testing.T, src *fakeSource) map[string]*dto.MetricFamily {
	t.Helper()
	format := expfmt.NewFormat(expfmt.TypeProtoDelim)
	resp := get(t, NewHandler(src, WithStart(started)), string(format))
	if got := expfmt.ResponseFormat(resp.Header); got.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("answered in %s, want delimited protobuf", got)
	}
	dec := expfmt.NewDecoder(resp.Body, format)
	fams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if err == io.EOF {
			return fams
		}
		if err != nil {
			t.Fatal(err)
		}
		fams[mf.GetName()] = &mf
	}
}

// find is the metric of family name whose labels include want; nil when none.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := fams[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a gauge's or counter's value; NaN when the series is missing.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := find(fams, name, labels)
	switch {
	case m == nil:
		return math.NaN()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func app(extra ...string) map[string]string {
	l := map[string]string{"database": "app", "user": "app"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}
