package loadgen

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/browser"
)

// The HTML report of a run over a fine and a refusing target opens in a
// real browser with every chart drawn from data, and fetches nothing.
func TestTheHTMLReportOpensInABrowserWithItsChartsDrawn(t *testing.T) {
	ctx := browser.Open(t) // skips without a Chromium unless CI=true
	seeded(t)
	cfg := quick("fine="+userURL(), "refused="+refusedURL(t))
	cfg.ObserveURL = cluster.SuperuserURL(cluster.Database)
	cfg.ObservePIDs = []int{0, os.Getpid()} // any live process: its CPU and RSS are charted
	res, err := Run(testutil.Context(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := res.WriteHTML(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"?(https?:)?//`).Find(b); m != nil {
		t.Fatalf("the report fetches something (%s): it must be self-contained", m)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+path)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"page-p95", "pages", "errors", "server-conns", "pooler-cpu"} {
		browser.WaitFor(t, ctx, 10*time.Second, id+" to have points", `+document.getElementById("`+id+`").dataset.points > 0`)
	}
	browser.WaitFor(t, ctx, 10*time.Second, "a row per phase and target",
		`document.querySelectorAll("#summary tbody tr").length === 8`)
	browser.WaitFor(t, ctx, 10*time.Second, "the refused target's errors listed under its name",
		`document.querySelector(".errors").innerText.includes("refused: connect refused")`)
	browser.WaitFor(t, ctx, 10*time.Second, "the targets' names in the legend",
		`[...document.querySelectorAll(".legend span")].map(s => s.textContent).join() === "fine,refused"`)
	t.Logf("screenshot: %s", browser.Screenshot(t, ctx, "bench-report"))
}
