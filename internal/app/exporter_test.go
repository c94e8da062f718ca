package app_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/pgcluster"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// A PgBouncer exporter that operators already run reads pgvalve's console
// as it reads PgBouncer's: Debian's prometheus-pgbouncer-exporter, which
// SHOWs LISTS, STATS, POOLS and DATABASES by column name.
func TestDebiansPgBouncerExporterScrapesTheConsole(t *testing.T) {
	exporter, err := exec.LookPath("prometheus-pgbouncer-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus-pgbouncer-exporter is not installed; scripts/ensure-exporter.sh installs it")
		}
		t.Skip("prometheus-pgbouncer-exporter is not installed (scripts/ensure-exporter.sh)")
	}
	cfg := sessionConfig(2)
	cfg.StatsUsers = []string{"exporter"}
	s, url := startValve(t, cfg)
	testutil.MustExec(t, testutil.Connect(t, url), "select 1") // a pool to export
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exporter, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--pgbouncer-host", "127.0.0.1", "--pgbouncer-port", fmt.Sprint(s.Addr.Port), "--pgbouncer-user", "exporter")
	logFile, err := os.Create(filepath.Join(t.TempDir(), "exporter.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }

	var body string
	testutil.EventuallyWithin(t, testutil.ContextTimeout/2, "the exporter to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("the exporter exited; its log:\n%s", logs())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("exporter answered %s; its log:\n%s", resp.Status, logs())
		}
		body = scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		return true
	})
	for _, want := range []string{
		fmt.Sprintf(`pgbouncer_active_clients{database="%s",user="%s"}`, pgtest.TestDatabase, cluster.User),
		fmt.Sprintf(`pgbouncer_waiting_clients{database="%s",user="%s"} 0.0`, pgtest.TestDatabase, cluster.User),
		fmt.Sprintf(`pgbouncer_requests_total{database="%s"}`, pgtest.TestDatabase),
		fmt.Sprintf(`pgbouncer_pool_size{database="%s"} 2.0`, pgtest.TestDatabase),
		"pgbouncer_pools 1.0",
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("the exporter's metrics lack %s; they are\n%s\nits log:\n%s", want, body, logs())
		}
	}
}
