package main

import (
	"io"
	"net/http"
	"regexp"
	"syscall"
	"testing"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// /healthz is ready while pgvalve takes clients, and says draining (503)
// while a SIGTERM lets a running transaction finish, so a load balancer
// sends new clients elsewhere before pgvalve ends.
func TestHealthzIsReadyUntilADrainBegins(t *testing.T) {
	c := startChild(t, "--config", writeFile(t, configText(1, `metrics_listen = "127.0.0.1:0"`)))
	m := regexp.MustCompile(`/api/ listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(c.waitLog(t, 0, "/api/ listening"))
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", c.log)
	}
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + m[1] + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while serving: %d %q; want 200 ok", code, body)
	}
	ctx := testutil.Context(t)
	client := connect(t, c.url(pgtest.TestDatabase), nil)
	tx, err := client.Begin(ctx) // the drain waits for it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	mark := c.signal(t, syscall.SIGTERM)
	c.waitLog(t, mark, "SIGTERM: draining")
	testutil.Eventually(t, "/healthz to say draining", func() bool {
		code, body := get()
		return code == http.StatusServiceUnavailable && body == "draining\n"
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the transaction running when the drain began: %v", err)
	}
}
