package app_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/browser"
	"github.com/pgvalve/pgvalve/internal/web"
)

// burst runs n short queries on each of clients connections at once, so
// that the pool has latencies to show.
func burst(t *testing.T, url string, clients, n int) {
	t.Helper()
	ctx := testutil.Context(t)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		c := connectTx(t, url+"&application_name=load")
		wg.Go(func() {
			for range n {
				if _, err := c.Exec(ctx, "select pg_sleep(0.002)"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("load: %v", err)
	}
}

// The live page, in a real browser, against a real pgvalve that served a
// burst of load and whose pool is now held by two workers idle in their
// transactions while a third client waits: the charts fill with live
// samples, the holders table names both workers, the diagnosis says who
// holds the pool.
func TestThePageShowsARealSaturatedPool(t *testing.T) {
	tab := browser.Open(t) // skips without a Chromium unless CI=true
	s, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	burst(t, url, 4, 100)

	page := web.New(s.App.Source(), web.Options{Interval: 250 * time.Millisecond})
	srv := httptest.NewServer(page)
	defer srv.Close()
	sampling, stopSampling := context.WithCancel(context.Background())
	var sampler sync.WaitGroup
	sampler.Go(func() { _ = page.Run(sampling) })
	defer sampler.Wait()
	defer stopSampling()

	var workers []pgx.Tx
	for range 2 {
		tx, err := connectTx(t, url+"&application_name=worker").Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "select 'a worker that forgot to commit'"); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, tx)
	}
	waiter := connectTx(t, url+"&application_name=waiter")
	waited := make(chan error, 1)
	go func() { _, err := waiter.Exec(ctx, "select 1"); waited <- err }()
	testutil.Eventually(t, "the third client to wait", func() bool { return poolView(t, s).ClientsWaiting == 1 })

	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	browser.WaitFor(t, tab, 20*time.Second, "the three charts to have points",
		`[...document.querySelectorAll('#pools svg[data-chart]')].filter(s => +s.dataset.points > 1).length === 3`)
	browser.WaitFor(t, tab, 20*time.Second, "the two workers in the holders table",
		`[...document.querySelectorAll('#holders tbody tr')].filter(r => r.innerText.includes('worker')).length === 2`)
	browser.WaitFor(t, tab, 20*time.Second, "the diagnosis", `document.querySelectorAll('#diagnosis-lines li').length === 1`)

	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](
			`[...document.querySelectorAll(`+"`"+sel+"`"+`)].map(e => e.innerText).join("\n")`))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return v
	}
	for _, row := range strings.Split(text("#holders tbody tr"), "\n") {
		if !strings.Contains(row, "idle in transaction") || !strings.Contains(row, "a worker that forgot to commit") {
			t.Errorf("holder row %q: want a worker idle in transaction and its query", row)
		}
	}
	if d := text("#diagnosis-lines li"); !strings.Contains(d, "1 client waiting") || !strings.Contains(d, "worker") {
		t.Errorf("diagnosis %q: want the waiting client and the workers named", d)
	}
	for stat, want := range map[string]string{"servers": "2 / 2", "waiting": "1"} {
		if got := text(`#pools [data-stat="` + stat + `"]`); got != want {
			t.Errorf("%s: %q, want %q", stat, got, want)
		}
	}
	if p95 := text(`#pools [data-stat="p95"]`); p95 == "" || p95 == "–" {
		t.Errorf("query p95 %q: want the burst's latency", p95)
	}
	browser.Screenshot(t, tab, "live-page")

	for _, tx := range workers {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-waited; err != nil {
		t.Fatalf("the waiting client: %v", err)
	}
	s.WaitIdle(t, 10*time.Second)
}
