package pgtest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/pgcluster"
)

// Run is for TestMain: it starts a cluster into *dst, runs m, stops the
// cluster, checks for leaked goroutines and returns the exit code:
//
//	var cluster *pgtest.Cluster
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &cluster, pgtest.Options{})) }
//
// Without PostgreSQL server binaries it fails under CI=true, so CI can never
// pass by silently skipping; elsewhere it says loudly that the package's tests
// are skipped and returns 0 without running m.
func Run(m *testing.M, dst **Cluster, opts Options) int {
	return run(m, dst, opts, runDeps{
		findBinDir: pgcluster.FindBinDir,
		start:      pgcluster.Start,
		getenv:     os.Getenv,
		stderr:     os.Stderr,
	})
}

// runner is what run needs of *testing.M, so tests can pass a fake.
type runner interface{ Run() int }

// runDeps lets tests drive Run's branches without real binaries or servers.
type runDeps struct {
	findBinDir func() (string, error)
	start      func(Options) (*Cluster, error)
	getenv     func(string) string
	stderr     io.Writer
}

func run(m runner, dst **Cluster, opts Options, d runDeps) int {
	pkg := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	if _, err := d.findBinDir(); err != nil {
		if d.getenv("CI") == "true" {
			fmt.Fprintf(d.stderr, "pgtest: FAIL %s: PostgreSQL server binaries were not found, and CI=true forbids skipping.\n"+
				"pgtest: `make test` installs them with apt-get.\npgtest: %v\n", pkg, err)
			return 1
		}
		banner := strings.Repeat("!", 72)
		fmt.Fprintf(d.stderr, "%s\npgtest: SKIPPING ALL DATABASE TESTS of %s: PostgreSQL server binaries were not found.\n"+
			"pgtest: `make test` installs them with apt-get.\npgtest: %v\n%s\n", banner, pkg, err, banner)
		return 0
	}

	c, err := d.start(opts)
	if err != nil {
		fmt.Fprintf(d.stderr, "pgtest: FAIL %s: cannot start PostgreSQL: %v\n", pkg, err)
		return 1
	}
	*dst = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(d.stderr, "pgtest: stopping PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	// Only after a passing run: failing tests often leak by failing midway,
	// and the leak report would bury the real failure.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(d.stderr, "pgtest: goroutines leaked by %s tests:\n%v\n", pkg, err)
			return 1
		}
	}
	return code
}
