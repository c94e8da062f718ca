package loadgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

var setupOnce sync.Once

// seeded creates the benchmark's schema on the test cluster, once.
func seeded(t *testing.T) {
	t.Helper()
	var err error
	setupOnce.Do(func() { err = Setup(testutil.Context(t), userURL(), 1) })
	if err != nil {
		t.Fatal(err)
	}
}

// quick is a small load: 4 users over 2 instances, 1 s phases.
func quick(targets ...string) Config {
	c := Defaults()
	c.Targets, c.Users, c.AppInstances, c.ClientPool, c.Workers = targets, 4, 2, 3, 1
	c.Phase, c.Think, c.PoolTimeout = time.Second, 50*time.Millisecond, 3*time.Second
	return c
}

// One run over three targets: one that is fine, one that refuses
// connections and one that never answers. Each row says what its target
// did, in the classes the app sees.
func TestARunOverAFineARefusingAndASilentTarget(t *testing.T) {
	seeded(t)
	cfg := quick(userURL(), refusedURL(t), silentURL(t))
	cfg.ObserveURL = cluster.SuperuserURL(cluster.Database)
	res, err := Run(testutil.Context(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 3 || len(res.Runs[0].Phases) != 4 {
		t.Fatalf("%d runs, first with %d phases; want 3 runs of ramp-up, steady, spike, recovery", len(res.Runs), len(res.Runs[0].Phases))
	}
	rows := byTarget(res.Rows())
	fine, refused, silent := rows[res.Targets[0]], rows[res.Targets[1]], rows[res.Targets[2]]
	for _, r := range fine {
		if r.Pages == 0 || r.Queries < int64(cfg.PageMin)*r.Pages || r.Failed != 0 || r.FailedPages != 0 {
			t.Errorf("fine target, %s: %d pages, %d queries, %d failed, %d failed pages; want pages, at least %d queries each, none failed",
				r.Phase, r.Pages, r.Queries, r.Failed, r.FailedPages, cfg.PageMin)
		}
		if r.MaxServerConns == nil || *r.MaxServerConns == 0 {
			t.Errorf("fine target, %s: no server connections observed", r.Phase)
		}
	}
	// Behind a silent server, queries also wait for the few logins their
	// pool allows at once, and some give up waiting: pool timeouts.
	for name, want := range map[string]struct {
		rows    []Row
		classes []Class
	}{"refusing": {refused, []Class{ConnectRefused}}, "silent": {silent, []Class{ConnectTimeout, PoolTimeout}}} {
		var pages, failedPages int64
		seen := map[Class]bool{}
		for _, r := range want.rows {
			pages, failedPages = pages+r.Pages, failedPages+r.FailedPages
			for _, e := range r.Errors {
				seen[e.Class] = true
				if !slices.Contains(want.classes, e.Class) {
					t.Errorf("%s target, %s: %d × %s; want only %v", name, r.Phase, e.Count, e.Class, want.classes)
				}
			}
		}
		if pages == 0 || failedPages != pages || !seen[want.classes[0]] {
			t.Errorf("%s target: %d of %d pages failed, errors %v; want some pages, all failed, with %s", name, failedPages, pages, seen, want.classes[0])
		}
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ramp-up", "recovery", "connect refused", "connect timeout", "pages/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}

// Every query sleeps 0.2-1 s: the query latencies the run reports must
// lie in that range, and each page lasts as long as its slowest query.
func TestReportedLatenciesAreTheQueriesOwn(t *testing.T) {
	seeded(t)
	cfg := quick(userURL())
	cfg.SlowQueryRate, cfg.ClientPool, cfg.PageMin, cfg.PageMax, cfg.Workers = 1, 12, 2, 2, 0
	cfg.Phase = 2 * time.Second
	res, err := Run(testutil.Context(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows() {
		q, p := r.Query, r.Page
		if q.Count == 0 || q.P50 < 200 || q.Max > 1500 || q.P50 < 400 || q.P50 > 800 {
			t.Errorf("%s: query latency %+v; want all within 0.2-1 s (plus overhead), the median near 0.6 s", r.Phase, q)
		}
		if p.Count == 0 || p.Count != r.Pages-r.FailedPages || p.P50 < q.P50 {
			t.Errorf("%s: page latency %+v (of %d pages, %d failed) below its queries' %+v, or not of every page that succeeded",
				r.Phase, p, r.Pages, r.FailedPages, q)
		}
	}
}

// Two rounds: each target's rows merge both, and the JSON holds each.
func TestRoundsMergeInTheTableAndStayApartInTheJSON(t *testing.T) {
	seeded(t)
	cfg := quick(userURL())
	cfg.Rounds = 2
	res, err := Run(testutil.Context(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs; want 2", len(res.Runs))
	}
	for i, r := range res.Rows() {
		want := res.Runs[0].Phases[i].Pages + res.Runs[1].Phases[i].Pages
		if r.Pages != want {
			t.Errorf("%s: %d pages in the table; the rounds had %d together", r.Phase, r.Pages, want)
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Runs) != 2 || back.Runs[1].Round != 1 || len(back.Runs[0].Timeline) < 3 || back.Runs[0].Phases[1].Pages == 0 {
		t.Fatalf("JSON round trip: %d runs, timeline of %d seconds; want both rounds with their timelines", len(back.Runs), len(back.Runs[0].Timeline))
	}
	if strings.Contains(string(b), cluster.Password) {
		t.Fatal("the JSON holds the target's password")
	}
}

func byTarget(rows []Row) map[string][]Row {
	m := map[string][]Row{}
	for _, r := range rows {
		m[r.Target] = append(m[r.Target], r)
	}
	return m
}

// With a restart command there is a restart phase: the command runs at its
// start, beside the load, and its start and end are events of the run.
func TestARestartCommandRunsAtTheRestartPhaseBesideTheLoad(t *testing.T) {
	seeded(t)
	marker := filepath.Join(t.TempDir(), "restarted")
	cfg := quick(userURL())
	cfg.RestartCmd = "sleep 0.2; echo restarted > " + marker + "; exit 3"
	res, err := Run(testutil.Context(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range res.Runs[0].Phases {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"ramp-up", "steady", "spike", "restart", "recovery"}) {
		t.Fatalf("phases %v; want ramp-up, steady, spike, restart, recovery", names)
	}
	ev := res.Runs[0].Events
	if len(ev) != 2 || ev[0].What != "restart command started" || !strings.Contains(ev[1].What, "failed: exit status 3") ||
		ev[1].At < ev[0].At+0.2 || ev[0].At < 3 {
		t.Fatalf("events %+v; want the start 3 s in (after three phases) and its failure (exit 3) 0.2 s later", ev)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "restarted\n" {
		t.Fatalf("the command did not run: %q, %v", b, err)
	}
	if res.Runs[0].Phases[3].Pages == 0 {
		t.Fatal("no pages during the restart phase: the load stopped for the command")
	}
}
