package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// get serves path and returns the status and body.
func get(t *testing.T, h http.Handler, path string) (int, http.Header, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// sameJSON fails unless got and want are the same JSON value.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		var pretty bytes.Buffer
		json.Indent(&pretty, got, "", "  ")
		t.Fatalf("got\n%s\nwant\n%s", pretty.String(), want)
	}
}

func TestAPIAnswersTheSourcesViewsInSnakeCaseWithSeconds(t *testing.T) {
	src := saturated(t0)
	s := New(src, Options{Now: fixedClock(t0)})
	cases := []struct{ path, want string }{
		{"/api/pools", `{"time": "2026-12-04T10:00:00Z", "pools": [{
			"database": "shop", "user": "app", "mode": "transaction", "size": 2, "reserve_size": 0,
			"paused": false, "draining": false,
			"clients_active": 2, "clients_waiting": 1, "clients_login": 0,
			"servers_active": 2, "servers_idle": 0, "servers_used": 0, "servers_login": 0, "servers_closing": 0,
			"max_wait": 1.5,
			"acquires": 120, "waits": 7, "wait_timeouts": 1, "dial_errors": 0, "xacts": 110, "queries": 340,
			"bytes_received": 1048576, "bytes_sent": 3145728,
			"wait_time": 2.5, "query_time": 4, "xact_time": 9,
			"servers_closed": {"lifetime": 2}, "last_dial_error": "",
			"latency": {
				"wait": {"count": 7, "sum": 2.5, "p50": 0.2, "p95": 1.2, "p99": 1.5, "max": 1.5},
				"query": {"count": 300, "sum": 3, "p50": 0.002, "p95": 0.025, "p99": 0.08, "max": 0.12},
				"xact": {"count": 0, "sum": 0, "p50": 0, "p95": 0, "p99": 0, "max": 0}
			}}]}`},
		{"/api/holders", `{"time": "2026-12-04T10:00:00Z", "holders": [
			{"id": 1, "addr": "10.0.0.7:51000", "user": "app", "database": "shop", "application_name": "worker",
			 "connected_at": "2026-12-04T09:50:00Z", "connected_for": 600, "state": "active",
			 "request_at": "2026-12-04T09:59:20Z", "waiting_since": null, "waiting_for": 0,
			 "server_pid": 4101, "held_since": "2026-12-04T09:59:18Z", "held_for": 42,
			 "hold_state": "idle in transaction", "query": "UPDATE jobs SET state = 'running' WHERE id = $1",
			 "server_share": 0.55},
			{"id": 2, "addr": "10.0.0.8:51002", "user": "app", "database": "shop", "application_name": "worker",
			 "connected_at": "2026-12-04T09:51:00Z", "connected_for": 540, "state": "active",
			 "request_at": "2026-12-04T09:59:30Z", "waiting_since": null, "waiting_for": 0,
			 "server_pid": 4102, "held_since": "2026-12-04T09:59:29Z", "held_for": 31,
			 "hold_state": "idle in transaction",
			 "query": "SELECT * FROM jobs WHERE state = 'queued' FOR UPDATE SKIP LOCKED", "server_share": 0.43}]}`},
		{"/api/servers", `{"time": "2026-12-04T10:00:00Z", "servers": [
			{"pid": 4101, "database": "shop", "user": "app", "state": "active",
			 "connected_at": "2026-12-04T09:40:00Z", "connected_for": 1200,
			 "request_at": "2026-12-04T09:59:20Z", "client_id": 1, "addr": "127.0.0.1:5432"},
			{"pid": 4102, "database": "shop", "user": "app", "state": "active",
			 "connected_at": "2026-12-04T09:40:00Z", "connected_for": 1200,
			 "request_at": "2026-12-04T09:59:30Z", "client_id": 2, "addr": "127.0.0.1:5432"}]}`},
		{"/api/diagnosis", `{"time": "2026-12-04T10:00:00Z",
			"lines": ["shop/app: all 2 servers held, 1 client waiting 1.5s; 2 holders idle in transaction (worker)"],
			"client_errors": {"53300": 1}}`},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.path, "/api/"), func(t *testing.T) {
			code, h, body := get(t, s, c.path)
			if code != http.StatusOK {
				t.Fatalf("%s: %d %s", c.path, code, body)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			sameJSON(t, body, c.want)
		})
	}
}

func TestAPIClientsListsEveryClientWithItsWait(t *testing.T) {
	s := New(saturated(t0), Options{Now: fixedClock(t0)})
	_, _, body := get(t, s, "/api/clients")
	var got struct {
		Clients []map[string]any `json:"clients"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Clients) != 3 {
		t.Fatalf("%d clients, want 3: %s", len(got.Clients), body)
	}
	w := got.Clients[2]
	if w["state"] != "waiting" || w["waiting_for"] != 1.5 || w["server_pid"] != 0.0 || w["held_since"] != nil {
		t.Errorf("waiting client: %v", w)
	}
}

func TestAPIAnswersEmptyListsNotNull(t *testing.T) {
	s := New(&fakeSource{}, Options{Now: fixedClock(t0)})
	for path, want := range map[string]string{
		"/api/pools":     `{"time": "2026-12-04T10:00:00Z", "pools": []}`,
		"/api/clients":   `{"time": "2026-12-04T10:00:00Z", "clients": []}`,
		"/api/holders":   `{"time": "2026-12-04T10:00:00Z", "holders": []}`,
		"/api/servers":   `{"time": "2026-12-04T10:00:00Z", "servers": []}`,
		"/api/diagnosis": `{"time": "2026-12-04T10:00:00Z", "lines": [], "client_errors": {}}`,
		"/api/history":   `{"time": "2026-12-04T10:00:00Z", "interval": 1, "keep": 900, "pools": []}`,
	} {
		_, _, body := get(t, s, path)
		sameJSON(t, body, want)
	}
}

func TestAPIIndexListsEveryEndpoint(t *testing.T) {
	s := New(&fakeSource{}, Options{})
	code, _, body := get(t, s, "/api/")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var idx struct {
		Endpoints []struct{ Path, Doc string } `json:"endpoints"`
	}
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range idx.Endpoints {
		paths = append(paths, e.Path)
		if e.Doc == "" {
			t.Errorf("%s has no doc", e.Path)
		}
		if c, _, b := get(t, s, e.Path); c != http.StatusOK {
			t.Errorf("%s: %d %s", e.Path, c, b)
		}
	}
	want := []string{"/api/pools", "/api/clients", "/api/holders", "/api/servers", "/api/diagnosis", "/api/history"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("index lists %v, want %v", paths, want)
	}
}

func TestHistoryAnswersSamplesSinceAGivenTime(t *testing.T) {
	now := t0
	src := saturated(t0)
	s := New(src, Options{Now: func() time.Time { return now }})
	for i := range 3 {
		src.set(func(f *fakeSource) { f.pools[0].ClientsWaiting = i })
		s.sample()
		now = now.Add(time.Second)
	}
	src.set(func(f *fakeSource) { f.pools[0].LatencyNow[observe.Query] = observe.Summary{} })
	s.sample()

	_, _, body := get(t, s, "/api/history?since=1796378401")
	sameJSON(t, body, `{"time": "2026-12-04T10:00:03Z", "interval": 1, "keep": 900, "pools": [
		{"database": "shop", "user": "app", "samples": [
			{"t": 1796378402, "servers_active": 2, "size": 2, "clients_waiting": 2, "max_wait": 1.5,
			 "queries": 300, "query_p50": 0.002, "query_p95": 0.025, "query_p99": 0.08},
			{"t": 1796378403, "servers_active": 2, "size": 2, "clients_waiting": 2, "max_wait": 1.5,
			 "queries": 0, "query_p50": null, "query_p95": null, "query_p99": null}]}]}`)

	_, _, body = get(t, s, "/api/history?pool=shop/app")
	if n := strings.Count(string(body), `"t":`); n != 4 {
		t.Errorf("pool=shop/app: %d samples, want 4: %s", n, body)
	}
	_, _, body = get(t, s, "/api/history?pool=other/app")
	sameJSON(t, body, `{"time": "2026-12-04T10:00:03Z", "interval": 1, "keep": 900, "pools": []}`)

	code, _, body := get(t, s, "/api/history?since=yesterday")
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"error"`) {
		t.Errorf("since=yesterday: %d %s", code, body)
	}
}

func TestHistoryKeepsABoundedRingPerPool(t *testing.T) {
	now := t0
	src := saturated(t0)
	s := New(src, Options{Interval: time.Second, Keep: 10 * time.Second, Now: func() time.Time { return now }})
	for i := range 25 {
		src.set(func(f *fakeSource) { f.pools[0].ServersActive = i })
		s.sample()
		now = now.Add(time.Second)
	}
	r := s.hist.pools[poolKey{"shop", "app"}]
	if len(r.buf) != 10 || r.n != 10 {
		t.Fatalf("ring holds %d of %d, want 10 of 10", r.n, len(r.buf))
	}
	var got []int
	r.each(func(s sample) { got = append(got, s.serversActive) })
	if want := []int{15, 16, 17, 18, 19, 20, 21, 22, 23, 24}; !reflect.DeepEqual(got, want) {
		t.Errorf("ring keeps %v, want the newest %v", got, want)
	}
}

func TestHistoryForgetsAPoolGoneForLongerThanKeep(t *testing.T) {
	now := t0
	src := saturated(t0)
	s := New(src, Options{Interval: time.Second, Keep: 5 * time.Second, Now: func() time.Time { return now }})
	s.sample()
	src.set(func(f *fakeSource) { f.pools = nil })
	for range 5 {
		now = now.Add(time.Second)
		s.sample()
	}
	if len(s.hist.pools) != 1 {
		t.Fatalf("pool gone for 5s of a 5s keep: forgotten already")
	}
	now = now.Add(time.Second)
	s.sample()
	if len(s.hist.pools) != 0 {
		t.Errorf("pool gone for 6s of a 5s keep still has a ring")
	}
}

func TestSamplerRunsUntilTheContextEnds(t *testing.T) {
	src := saturated(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	h := NewHandler(ctx, src, Options{Interval: time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for src.poolReads() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if src.poolReads() < 3 {
		t.Fatal("the sampler did not read the source")
	}
	_, _, body := get(t, h, "/api/history")
	if !strings.Contains(string(body), `"servers_active":2`) {
		t.Errorf("history after sampling: %s", body)
	}
	cancel()
	goleak.VerifyNone(t)
	n := src.poolReads()
	time.Sleep(20 * time.Millisecond)
	if src.poolReads() != n {
		t.Error("the sampler still reads the source after its context ended")
	}
}

func TestPageIsOneEmbeddedPageWithItsAssets(t *testing.T) {
	s := New(&fakeSource{}, Options{})
	code, h, body := get(t, s, "/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %s", code, h.Get("Content-Type"))
	}
	for _, want := range []string{`id="holders"`, `id="diagnosis"`, `id="pools"`, `src="page/app.js"`, `href="page/style.css"`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
	if bytes.Contains(body, []byte("http://")) || bytes.Contains(body, []byte("https://")) {
		t.Error("page refers to the network")
	}
	for path, ct := range map[string]string{"/page/app.js": "text/javascript", "/page/style.css": "text/css"} {
		code, h, body := get(t, s, path)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), ct) || len(body) == 0 {
			t.Errorf("%s: %d %q %d bytes", path, code, h.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/page/index.htm", "/page/web.go", "/page/", "/nothing", "/api/nothing"} {
		if code, _, _ := get(t, s, path); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/pools", io.NopCloser(strings.NewReader(""))))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/pools: %d, want 405", rec.Code)
	}
}
