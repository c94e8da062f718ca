package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/loadgen"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestBenchScenarioSetsTheLoadAndFlagsOverrideIt(t *testing.T) {
	cfg, _, err := parseBench([]string{"--scenario", "many-pools", "--client-pool", "5", "--target", "postgres://x@h/db"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppInstances != 10 || cfg.ClientRetry != 3 || cfg.ClientPool != 5 {
		t.Fatalf("many-pools with --client-pool 5: %d instances, retry %d, pool %d; want 10, 3 and 5",
			cfg.AppInstances, cfg.ClientRetry, cfg.ClientPool)
	}
}

func TestBenchRefusesABadLoadWithTheFlagToFix(t *testing.T) {
	for args, want := range map[string]string{
		"--users 1":                                  "no --target",
		"--target x --page-min 5 --page-max 2":       "--page-max (2) is below --page-min (5)",
		"--target x --scenario huge":                 `unknown scenario "huge"`,
		"--target x --slow-query-rate 2":             "--slow-query-rate must be between 0 and 1",
		"--target x --observe-pid 1 --observe-pid 2": "2 --observe-pid for 1 --target",
	} {
		var stderr strings.Builder
		if rc := realMain(append([]string{"bench"}, strings.Fields(args)...), os.Stdout, &stderr); rc != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("bench %s: exit %d, %q; want 2 and %q", args, rc, stderr.String(), want)
		}
	}
}

// The whole command against a real PostgreSQL: its own schema created and
// dropped, the table printed, the JSON written.
func TestBenchRunsAgainstPostgreSQLAndWritesItsReports(t *testing.T) {
	url := cluster.URL(cluster.User, cluster.Password, cluster.Database)
	out := filepath.Join(t.TempDir(), "bench.json")
	page := filepath.Join(t.TempDir(), "bench.html")
	var stdout, stderr strings.Builder
	rc := realMain([]string{"bench", "--target", url, "--setup", "--teardown", "--duration", "1s", "--users", "2",
		"--app-instances", "1", "--workers", "0", "--think", "10ms", "--json", out, "--html", page}, &stdout, &stderr)
	if rc != 0 {
		t.Fatalf("exit %d\n%s%s", rc, stdout.String(), stderr.String())
	}
	for _, want := range []string{"phase", "steady", "spike", "no errors"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(b, &res); err != nil || len(res.Runs) != 1 || res.Runs[0].Phases[1].Pages == 0 {
		t.Fatalf("the JSON: %v, %+v; want one run with pages", err, res.Runs)
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), `id="page-p95"`) {
		t.Fatalf("the HTML report: %v; want its charts", err)
	}
	var exists bool
	c := testutil.Connect(t, url)
	if err := c.QueryRow(testutil.Context(t), "select exists (select from pg_namespace where nspname = $1)", loadgen.Schema).Scan(&exists); err != nil || exists {
		t.Fatalf("after --teardown the schema exists: %v, %v", exists, err)
	}
}
