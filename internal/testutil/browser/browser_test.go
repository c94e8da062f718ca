package browser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOpenRunsAPageAndLeavesNoProcessBehind(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>t</title><p id="p">waiting</p>
<script>setTimeout(() => document.getElementById("p").textContent = "ready", 100)</script>`))
	}))
	defer srv.Close()

	var profile string
	t.Run("browse", func(t *testing.T) {
		ctx := Open(t)
		c := chromedp.FromContext(ctx)
		if c == nil || c.Browser == nil || c.Browser.Process() == nil {
			t.Fatal("Open returned no running browser")
		}
		cmd, err := os.ReadFile("/proc/" + strconv.Itoa(c.Browser.Process().Pid) + "/cmdline")
		if err != nil {
			t.Skipf("cannot read the browser's command line: %v", err)
		}
		for _, a := range strings.Split(string(cmd), "\x00") {
			if v, ok := strings.CutPrefix(a, "--user-data-dir="); ok {
				profile = v
			}
		}
		if profile == "" || len(using(profile)) == 0 {
			t.Fatalf("cannot see the browser's processes: %q", cmd)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, ctx, 10*time.Second, "the script", `document.getElementById("p").textContent === "ready"`)
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#p")))
		if err != nil || text != "ready" {
			t.Fatalf("text %q, %v", text, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if p := Screenshot(t, wctx, "blank"); !strings.HasSuffix(p, "blank.png") {
			t.Errorf("screenshot at %s", p)
		}
	})
	if profile == "" {
		return // skipped before a browser ran: using("") would match every process
	}
	if left := using(profile); len(left) > 0 {
		t.Errorf("processes left after the test ended: %v", left)
	}
}
