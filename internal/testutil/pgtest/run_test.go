package pgtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/pgcluster"
)

// TestMain checks this package's own tests for leaks; they start any cluster
// they need themselves, through run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runFunc adapts a function to the runner run expects of *testing.M.
type runFunc func() int

func (f runFunc) Run() int { return f() }

func env(ci string) func(string) string {
	return func(k string) string {
		if k == "CI" {
			return ci
		}
		return ""
	}
}

func missingBinaries(ci string, stderr *strings.Builder) runDeps {
	return runDeps{
		findBinDir: func() (string, error) { return "", errors.New("no initdb anywhere") },
		start: func(Options) (*Cluster, error) {
			panic("start called without binaries")
		},
		getenv: env(ci),
		stderr: stderr,
	}
}

// fakeCluster gives run a cluster whose Stop has nothing to stop.
func fakeCluster(stderr *strings.Builder) runDeps {
	return runDeps{
		findBinDir: func() (string, error) { return "/nowhere", nil },
		start:      func(Options) (*Cluster, error) { return &Cluster{}, nil },
		getenv:     env(""),
		stderr:     stderr,
	}
}

func TestRunFailsUnderCIWhenServerBinariesAreMissing(t *testing.T) {
	var out strings.Builder
	var dst *Cluster
	// m is nil: reaching m.Run would panic, proving Run never runs the tests.
	if code := run(nil, &dst, Options{}, missingBinaries("true", &out)); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	for _, want := range []string{"PostgreSQL server binaries were not found", "apt-get", "no initdb anywhere"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("message %q lacks %q", out.String(), want)
		}
	}
}

func TestRunSkipsLoudlyOutsideCIWhenServerBinariesAreMissing(t *testing.T) {
	var out strings.Builder
	var dst *Cluster
	if code := run(nil, &dst, Options{}, missingBinaries("", &out)); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	if !strings.Contains(out.String(), "SKIPPING ALL DATABASE TESTS") || dst != nil {
		t.Fatalf("message %q, dst %v", out.String(), dst)
	}
}

func TestRunReportsAClusterThatCannotStart(t *testing.T) {
	var out strings.Builder
	d := fakeCluster(&out)
	d.start = func(Options) (*Cluster, error) { return nil, errors.New("initdb exploded") }
	var dst *Cluster
	if code := run(nil, &dst, Options{}, d); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if !strings.Contains(out.String(), "initdb exploded") || dst != nil {
		t.Fatalf("message %q, dst %v", out.String(), dst)
	}
}

func TestRunFailsAPassingRunThatLeaksAGoroutine(t *testing.T) {
	var out strings.Builder
	release := make(chan struct{})
	defer close(release)
	var dst *Cluster
	code := run(runFunc(func() int {
		go func() { <-release }()
		return 0
	}), &dst, Options{}, fakeCluster(&out))
	if code != 1 || !strings.Contains(out.String(), "goroutines leaked") {
		t.Fatalf("exit code = %d, message %q; want 1 and a leak report", code, out.String())
	}
}

func TestRunKeepsAFailingRunsExitCodeAndSkipsTheLeakCheck(t *testing.T) {
	var out strings.Builder
	release := make(chan struct{})
	defer close(release)
	var dst *Cluster
	code := run(runFunc(func() int {
		go func() { <-release }()
		return 3
	}), &dst, Options{}, fakeCluster(&out))
	if code != 3 || out.Len() != 0 {
		t.Fatalf("exit code = %d, message %q; want 3 and no message", code, out.String())
	}
}

// requireBinaries skips a test that needs a real server when there are no
// server binaries, except under CI=true, where that is a failure.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := pgcluster.FindBinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true forbids skipping: %v", err)
		}
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
}

func TestRunHandsTheTestsARealClusterAndRemovesItAfterwards(t *testing.T) {
	requireBinaries(t)
	var out strings.Builder
	d := fakeCluster(&out)
	d.findBinDir, d.start = pgcluster.FindBinDir, pgcluster.Start
	var dst *Cluster
	var dataDir string
	code := run(runFunc(func() int {
		if dst == nil {
			t.Error("dst is nil while the tests run")
			return 1
		}
		dataDir = dst.DataDir
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dst.URL(dst.User, dst.Password, TestDatabase))
		if err != nil {
			t.Errorf("connect: %v", err)
			return 1
		}
		defer conn.Close(context.Background())
		var user string
		if err := conn.QueryRow(ctx, "select current_user").Scan(&user); err != nil || user != TestUser {
			t.Errorf("current_user = %q, %v; want %q", user, err, TestUser)
			return 1
		}
		return 0
	}), &dst, Options{}, d)
	if code != 0 {
		t.Fatalf("exit code = %d, message %q", code, out.String())
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir %q still there after run: %v", dataDir, err)
	}
}
