// Package browser drives a headless Chromium from tests, with chromedp:
// Open starts one for a test and ends it, and every process it started,
// when the test ends. It is test-only.
//
// The Chromium is $PGVALVE_CHROMIUM, else the first of chromium,
// chromium-browser, google-chrome-stable, google-chrome and headless-shell
// on $PATH (scripts/ensure-chromium.sh installs Debian's). Without one a
// test is skipped, unless CI=true: there it fails.
package browser

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// ExecPath returns the Chromium Open runs, or "" when there is none.
func ExecPath() string {
	if p := os.Getenv("PGVALVE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Width and Height are the size of the window Open gives a page, in CSS
// pixels; a full-page screenshot is Width wide.
const Width, Height = 1280, 900

// Open starts a headless Chromium for t, in a fresh profile, and returns the
// context of one tab in it: pass it, or a context derived from it with a
// timeout, to chromedp.Run. When t ends the browser is closed and Open
// checks that none of its processes is left.
func Open(t testing.TB) context.Context {
	t.Helper()
	path := ExecPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("browser: no Chromium on PATH and CI=true; run scripts/ensure-chromium.sh")
		}
		t.Skip("browser: no Chromium found (chromium, google-chrome, or $PGVALVE_CHROMIUM); run scripts/ensure-chromium.sh as root, or set CI=true to make this a failure")
	}
	profile := t.TempDir()
	var out testutil.Buffer // written by chromedp's goroutine
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(Width, Height),
		chromedp.CombinedOutput(&out),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	// WithErrorf: chromedp reports there the protocol events it cannot
	// decode (a newer Chromium's); they are not the test's failures, and
	// t.Logf may not be called once the test has ended.
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(string, ...any) {}))
	closed := false
	closeBrowser := func() {
		if closed {
			return
		}
		closed = true
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("browser: closing Chromium: %v", err)
		}
		ccancel()
		cancel()
		allocCancel() // waits for the browser process
		if left := waitGone(profile, 5*time.Second); len(left) > 0 {
			t.Errorf("browser: Chromium processes left running: %v", left)
		}
	}
	// The first Run starts the browser; a failure to start is reported here.
	if err := chromedp.Do(ctx); err != nil {
		closeBrowser()
		t.Fatalf("browser: starting %s: %v\n%s", path, err, tail(out.String(), 2000))
	}
	t.Cleanup(closeBrowser)
	return ctx
}

// Screenshot saves a PNG of the whole page in ctx's tab as name.png in
// ScreenshotDir(t) and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	p := filepath.Join(ScreenshotDir(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatalf("browser: %v", err)
	}
	t.Logf("browser: screenshot %s", p)
	return p
}

// ScreenshotDir is where Screenshot writes: $PGVALVE_SCREENSHOT_DIR (made
// when missing), else a directory that goes away with t.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PGVALVE_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("browser: PGVALVE_SCREENSHOT_DIR: %v", err)
		}
		return d
	}
	return t.TempDir()
}

// WaitFor waits until the JavaScript expression is truthy in ctx's tab,
// for at most timeout; it fails t with what, and the page's text, when it
// is not.
func WaitFor(t testing.TB, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(wctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("browser: waiting for %s (%s): %v\npage text:\n%s", what, expr, err, tail(text, 3000))
	}
}

// waitGone waits until no process runs with profile in its command line
// and returns the PIDs of those that still do.
func waitGone(profile string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := using(profile)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// using lists the processes whose command line names dir (Linux; none
// elsewhere).
func using(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(dir)) {
			continue
		}
		// A zombie is gone in all but name; its parent reaps it.
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && zombie(st) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
