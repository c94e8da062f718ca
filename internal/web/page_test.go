package web

import (
	"context"
	"math"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/testutil/browser"
)

// liveSource is saturated's pool, its latency and longest wait moving
// with the clock, as a live pgvalve's do.
type liveSource struct {
	*fakeSource
	start time.Time
}

func (l liveSource) Pools() []observe.Pool {
	ps := l.fakeSource.Pools()
	s := time.Since(l.start).Seconds()
	for i := range ps {
		wave := 1 + 0.3*math.Sin(s)
		q := &ps[i].LatencyNow[observe.Query]
		q.P50 = time.Duration(float64(q.P50) * wave)
		q.P95 = time.Duration(float64(q.P95) * wave)
		q.P99 = time.Duration(float64(q.P99) * wave)
		ps[i].MaxWait += time.Duration(s * float64(time.Second))
	}
	return ps
}

// prefill gives s the five minutes a pool took to saturate: a quiet start,
// a busier one, then both servers held by workers and clients queueing.
func prefill(s *Server, now time.Time) {
	for i := range 300 {
		at := now.Add(time.Duration(i-300) * time.Second)
		f := float64(i)
		active, waiting := 1, 0
		switch {
		case i >= 210:
			active, waiting = 2, 1+int(math.Round(0.6+0.6*math.Sin(f/7)))
		case i >= 120:
			active = 1 + int(math.Round(0.5+0.5*math.Sin(f/5)))
		case i%9 == 0:
			active = 0
		}
		load := 1 + float64(active)/2 + float64(waiting)
		jitter := 1 + 0.15*math.Sin(f/3)
		ms := func(v float64) time.Duration { return time.Duration(v * jitter * float64(time.Millisecond)) }
		s.hist.add(at, []observe.Pool{{
			Database: "shop", User: "app", Size: 2, ServersActive: active, ClientsWaiting: waiting,
			MaxWait: time.Duration(waiting) * 800 * time.Millisecond,
			LatencyNow: [observe.NumKinds]observe.Summary{observe.Query: {
				Count: 300, P50: ms(1.5 * load), P95: ms(9 * load), P99: ms(24 * load)}},
		}})
	}
}

func TestPageShowsALivePoolItsHoldersAndTheDiagnosis(t *testing.T) {
	ctx := browser.Open(t) // skips without a Chromium unless CI=true

	now := time.Now()
	src := liveSource{saturated(now), now}
	s := New(src, Options{})
	prefill(s, now)
	srv := httptest.NewServer(s)
	defer srv.Close()
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(runCtx) })
	defer wg.Wait()
	defer stop()

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browser.WaitFor(t, ctx, 15*time.Second, "the three charts to have points",
		`[...document.querySelectorAll('#pools svg[data-chart]')].filter(s => +s.dataset.points > 0).length === 3`)
	browser.WaitFor(t, ctx, 15*time.Second, "two holders", `document.querySelectorAll('#holders tbody tr').length === 2`)
	browser.WaitFor(t, ctx, 15*time.Second, "the diagnosis", `document.querySelectorAll('#diagnosis-lines li').length === 1`)

	// The page keeps itself up to date: a newer sample a refresh later.
	before := newest(t, ctx)
	browser.WaitFor(t, ctx, 15*time.Second, "the next sample",
		`+document.querySelector('#pools svg[data-chart="util"]').dataset.newest > `+before)

	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll(`+"`"+sel+"`"+`)].map(e => e.innerText).join("\n")`))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return v
	}
	rows := strings.Split(text("#holders tbody tr"), "\n")
	if len(rows) != 2 {
		t.Fatalf("holders rows: %q", rows)
	}
	seconds := regexp.MustCompile(`^\d+\.\d\x{a0}s$`)
	percent := regexp.MustCompile(`^\d+\x{a0}%$`)
	for i, want := range []struct{ id, pid, share string }{{"1", "4101", "55"}, {"2", "4102", "43"}} {
		cells := strings.Split(rows[i], "\t")
		if len(cells) != 11 {
			t.Fatalf("row %d has %d cells: %q", i, len(cells), rows[i])
		}
		if cells[0] != want.id || cells[4] != "worker" || cells[5] != want.pid ||
			!seconds.MatchString(cells[7]) || cells[8] != "idle in transaction" ||
			!percent.MatchString(cells[10]) || !strings.HasPrefix(cells[10], want.share) {
			t.Errorf("row %d: %q", i, cells)
		}
	}
	if d := text("#diagnosis-lines li"); !strings.Contains(d, "all 2 servers held, 1 client waiting") {
		t.Errorf("diagnosis: %q", d)
	}
	pool := text(`#pools article[data-pool="shop/app"]`)
	for _, want := range []string{"shop / app", "transaction pooling", "saturated", "2 / 2"} {
		if !strings.Contains(pool, want) {
			t.Errorf("pool card lacks %q:\n%s", want, pool)
		}
	}
	for stat, want := range map[string]string{"servers": "2 / 2", "waiting": "1", "clients": "2"} {
		if got := text(`#pools [data-stat="` + stat + `"]`); got != want {
			t.Errorf("%s: %q, want %q", stat, got, want)
		}
	}
	if p95 := text(`#pools [data-stat="p95"]`); !strings.HasSuffix(p95, "ms") {
		t.Errorf("query p95: %q, want milliseconds", p95)
	}
	if st := text("#status"); !strings.HasPrefix(st, "live") {
		t.Errorf("status: %q", st)
	}

	browser.Screenshot(t, ctx, "live-page")
}

func newest(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#pools svg[data-chart="util"]').dataset.newest`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPageShowsClientsWordsAsTextAndSaysWhenPgvalveStopsAnswering(t *testing.T) {
	ctx := browser.Open(t)

	now := time.Now()
	src := saturated(now)
	evil := `<img id="evil" src="x" onerror="document.title='owned'">`
	src.set(func(f *fakeSource) {
		f.clients[0].ApplicationName = evil
		f.clients[0].Query = `</td><script>document.title='owned'</script>`
		f.diagnosis = []string{evil}
	})
	srv := httptest.NewServer(New(src, Options{}))
	defer srv.Close()

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browser.WaitFor(t, ctx, 15*time.Second, "two holders", `document.querySelectorAll('#holders tbody tr').length === 2`)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		String(document.getElementById("evil")),
		document.title,
		document.querySelector('#holders tbody tr td:nth-child(5)').textContent,
		document.querySelector('#diagnosis-lines li').textContent]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"null", "pgvalve", evil, evil}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}

	srv.CloseClientConnections()
	srv.Close()
	browser.WaitFor(t, ctx, 15*time.Second, "the status to say pgvalve stopped answering",
		`document.getElementById("status").dataset.state === "stale" && document.getElementById("status").textContent.startsWith("no answer")`)
}
