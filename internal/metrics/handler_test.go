package metrics

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAPoolWithOneWaitingClientShowsItWaiting(t *testing.T) {
	fams := scrapeText(t, appSource())
	if got := value(fams, "pgvalve_clients", app("state", "waiting")); got != 1 {
		t.Errorf(`pgvalve_clients{database="app",user="app",state="waiting"} = %v, want 1`, got)
	}
	if got := value(fams, "pgvalve_max_wait_seconds", app()); got != 1.5 {
		t.Errorf("pgvalve_max_wait_seconds = %v, want 1.5", got)
	}
}

func TestEveryNumberOfAPoolIsExported(t *testing.T) {
	fams := scrapeText(t, appSource())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pgvalve_clients", app("state", "active"), 7},
		{"pgvalve_clients", app("state", "login"), 2},
		{"pgvalve_servers", app("state", "active"), 5},
		{"pgvalve_servers", app("state", "idle"), 3},
		{"pgvalve_servers", app("state", "used"), 1},
		{"pgvalve_servers", app("state", "login"), 1},
		{"pgvalve_servers", app("state", "closing"), 0},
		{"pgvalve_pool_size", app(), 20},
		{"pgvalve_pool_reserve_size", app(), 2},
		{"pgvalve_pool_mode", app("mode", "transaction"), 1},
		{"pgvalve_pool_paused", app(), 0},
		{"pgvalve_pool_paused", map[string]string{"database": "reports", "user": "analyst"}, 1},
		{"pgvalve_pool_draining", app(), 0},
		{"pgvalve_dial_failing", app(), 1},
		{"pgvalve_acquires_total", app(), 1000},
		{"pgvalve_waits_total", app(), 40},
		{"pgvalve_wait_timeouts_total", app(), 2},
		{"pgvalve_dial_errors_total", app(), 3},
		{"pgvalve_transactions_total", app(), 900},
		{"pgvalve_queries_total", app(), 2500},
		{"pgvalve_received_bytes_total", app(), 1 << 20},
		{"pgvalve_sent_bytes_total", app(), 5 << 20},
		{"pgvalve_wait_seconds_total", app(), 3},
		{"pgvalve_query_seconds_total", app(), 42},
		{"pgvalve_transaction_seconds_total", app(), 60},
		{"pgvalve_server_connections_closed_total", app("reason", "idle_timeout"), 4},
		{"pgvalve_server_connections_closed_total", app("reason", "lost"), 1},
		{"pgvalve_client_errors_total", map[string]string{"sqlstate": "53300"}, 2},
		{"pgvalve_clients_parked", nil, 7},
		{"pgvalve_client_parks_total", nil, 31},
		{"pgvalve_info", map[string]string{"version": "1.2.3"}, 1},
		{"pgvalve_start_time_seconds", nil, float64(started.Unix())},
	} {
		if got := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestClassicBucketsAreCumulativeAndAgreeWithCountAndSum(t *testing.T) {
	fams := scrapeText(t, appSource())
	h := find(fams, "pgvalve_query_duration_seconds", app()).GetHistogram()
	if h.GetSampleCount() != 4 || math.Abs(h.GetSampleSum()-6.0017) > 1e-9 {
		t.Fatalf("count %d sum %v, want 4 and 6.0017", h.GetSampleCount(), h.GetSampleSum())
	}
	prev := uint64(0)
	for _, b := range h.Bucket {
		if b.GetCumulativeCount() < prev {
			t.Fatalf("bucket le=%v holds %d, fewer than the one before (%d)", b.GetUpperBound(), b.GetCumulativeCount(), prev)
		}
		prev = b.GetCumulativeCount()
	}
	// 200µs, 1.5ms, 1s, 5s against powers of two: exact, since the
	// classic bounds are native bounds.
	for le, want := range map[float64]uint64{1.0 / 8192: 0, 1.0 / 4096: 1, 1.0 / 512: 2, 0.5: 2, 1: 3, 4: 3, 8: 4, 128: 4} {
		if got := bucket(h, le); got != want {
			t.Errorf("le=%v: %d, want %d", le, got, want)
		}
	}
	w := find(fams, "pgvalve_wait_duration_seconds", app()).GetHistogram()
	if got := bucket(w, math.Exp2(-14)); got != 2 {
		t.Errorf("waits at or below the first bound: %d, want the 2 that did not wait", got)
	}
}

func bucket(h *dto.Histogram, le float64) uint64 {
	for _, b := range h.Bucket {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	return math.MaxUint64
}

func TestNativeSpansDecodeBackToTheHistogramsCounts(t *testing.T) {
	src := appSource()
	fams := scrapeProto(t, src)
	for k, name := range map[observe.Kind]string{
		observe.Wait: "pgvalve_wait_duration_seconds", observe.Query: "pgvalve_query_duration_seconds",
		observe.Xact: "pgvalve_transaction_duration_seconds",
	} {
		h := find(fams, name, app()).GetHistogram()
		want := src.pools[0].Latency[k].Native()
		if h.GetSchema() != observe.Schema || h.GetZeroThreshold() != observe.ZeroThreshold ||
			h.GetZeroCount() != want.ZeroCount || h.GetSampleCount() != want.Count {
			t.Errorf("%s: schema %d zero %v/%d count %d, want %d %v/%d %d", name, h.GetSchema(),
				h.GetZeroThreshold(), h.GetZeroCount(), h.GetSampleCount(),
				observe.Schema, observe.ZeroThreshold, want.ZeroCount, want.Count)
		}
		got := decodeSpans(h.PositiveSpan, h.PositiveDelta)
		for i, c := range want.Buckets {
			if got[observe.MinKey+i] != c {
				t.Errorf("%s: bucket %d holds %d, want %d", name, observe.MinKey+i, got[observe.MinKey+i], c)
			}
		}
		if !h.GetCreatedTimestamp().AsTime().Equal(started) {
			t.Errorf("%s: created %v, want pgvalve's start", name, h.GetCreatedTimestamp().AsTime())
		}
		if len(h.Bucket) == 0 {
			t.Errorf("%s: no classic buckets beside the native ones", name)
		}
	}
}

// decodeSpans is Prometheus's reading of spans and deltas: key to count.
func decodeSpans(spans []*dto.BucketSpan, deltas []int64) map[int]uint64 {
	out := map[int]uint64{}
	key, count, d := 0, int64(0), 0
	for _, s := range spans {
		key += int(s.GetOffset())
		for range s.GetLength() {
			count += deltas[d]
			d++
			out[key] = uint64(count)
			key++
		}
	}
	return out
}

func TestSpansKeepSmallGapsInsideOneSpan(t *testing.T) {
	counts := make([]uint64, observe.NumBuckets)
	at := func(key int) *uint64 { return &counts[key-observe.MinKey] }
	*at(0), *at(2), *at(3), *at(10) = 5, 1, 1, 2 // gap of 1, then 6
	ss, deltas := spans(counts)
	if len(ss) != 2 || ss[0].GetOffset() != 0 || ss[0].GetLength() != 4 || ss[1].GetOffset() != 6 || ss[1].GetLength() != 1 {
		t.Fatalf("spans %v, want {0,4} {6,1}", ss)
	}
	got := decodeSpans(ss, deltas)
	if got[0] != 5 || got[1] != 0 || got[2] != 1 || got[3] != 1 || got[10] != 2 || len(got) != 5 {
		t.Errorf("decoded %v", got)
	}
}

func TestAPoolDrainingBesideItsReplacementIsOneSeries(t *testing.T) {
	old := appPool()
	old.Draining, old.Mode, old.Size = true, "session", 10
	src := &fakeSource{pools: []observe.Pool{old, appPool()}}
	fams := scrapeText(t, src)
	if got := value(fams, "pgvalve_clients", app("state", "active")); got != 14 {
		t.Errorf("active clients %v, want both pools' 14", got)
	}
	if got := value(fams, "pgvalve_pool_size", app()); got != 20 {
		t.Errorf("pool size %v, want the live pool's 20", got)
	}
	if got := value(fams, "pgvalve_server_connections_closed_total", app("reason", "lost")); got != 2 {
		t.Errorf("lost servers %v, want 2", got)
	}
	if got := find(fams, "pgvalve_query_duration_seconds", app()).GetHistogram().GetSampleCount(); got != 8 {
		t.Errorf("queries in the histogram: %d, want 8", got)
	}
	if n := len(fams["pgvalve_pool_mode"].Metric); n != 1 {
		t.Errorf("%d pool modes, want 1 (the live pool's)", n)
	}
	if got := src.pools[0].ServersClosed["lost"]; got != 1 {
		t.Errorf("the source's own map was changed: lost = %d", got)
	}
}

func TestNamesAreValidAndLabelValuesComeFromSmallSets(t *testing.T) {
	src := appSource()
	src.errors["not a sqlstate"] = 1
	src.pools[0].ServersClosed["closed by 10.0.0.1:5432"] = 1
	allowed := map[string]map[string]bool{
		"state":    {"active": true, "waiting": true, "login": true, "idle": true, "used": true, "closing": true},
		"mode":     {"session": true, "transaction": true, "statement": true},
		"reason":   {"idle_timeout": true, "lost": true, "other": true},
		"sqlstate": {"53300": true, "08P01": true, "other": true},
		"database": {"app": true, "reports": true},
		"user":     {"app": true, "analyst": true},
		"version":  {"1.2.3": true},
	}
	for name, mf := range scrapeText(t, src) {
		if !model.LegacyValidation.IsValidMetricName(name) {
			t.Errorf("invalid metric name %q", name)
		}
		if !strings.HasPrefix(name, "pgvalve_") {
			continue // Go and process collectors
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if !allowed[lp.GetName()][lp.GetValue()] {
					t.Errorf("%s: label %s=%q is not one of a small set", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func TestOnlyGetMetricsIsServed(t *testing.T) {
	srv := httptest.NewServer(NewHandler(appSource()))
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		want         int
	}{{http.MethodPost, "/metrics", http.StatusMethodNotAllowed}, {http.MethodGet, "/", http.StatusNotFound}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

func TestTheDefaultRegistryIsLeftAlone(t *testing.T) {
	scrapeText(t, appSource())
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range fams {
		if strings.HasPrefix(mf.GetName(), "pgvalve_") {
			t.Errorf("%s is in the default registry", mf.GetName())
		}
	}
}

func TestGoAndProcessMetricsComeAlong(t *testing.T) {
	fams := scrapeText(t, appSource())
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil && (name != "process_start_time_seconds" || runtime.GOOS == "linux") { // /proc
			t.Errorf("%s missing", name)
		}
	}
}
