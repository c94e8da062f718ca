package pgcluster

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFakeInitdb(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindBinDirFallsBackToTheNewestVersionedDirectory(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "16", "13"} {
		writeFakeInitdb(t, filepath.Join(root, v, "bin"))
	}
	got, err := findBinDir("pgcluster-no-such-pg_config", filepath.Join(root, "*", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "16", "bin"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestFindBinDirNamesBothPlacesWhenNothingIsFound(t *testing.T) {
	glob := filepath.Join(t.TempDir(), "*", "bin")
	_, err := findBinDir("pgcluster-no-such-pg_config", glob)
	if err == nil || !strings.Contains(err.Error(), "pg_config") || !strings.Contains(err.Error(), glob) {
		t.Fatalf("err = %v, want one naming pg_config and %s", err, glob)
	}
}

func TestCompareVersionsOrdersNumerically(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"9.6", "15", -1},
		{"16", "15", 1},
		{"10", "9.6", 1},
		{"15", "15.0", -1}, // equal numbers fall back to the strings
		{"15", "15", 0},
	} {
		got := compareVersions(tc.a, tc.b)
		if (got > 0) != (tc.sign > 0) || (got < 0) != (tc.sign < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.sign)
		}
	}
}

func TestChildEnvDropsPGVariablesAndPinsTheCLocale(t *testing.T) {
	env := childEnv([]string{"PGHOST=elsewhere", "PGPORT=1", "PATH=/bin", "LC_CTYPE=xx", "LANG=de_DE.UTF-8"})
	got := strings.Join(env, " ")
	if got != "PATH=/bin LC_ALL=C LANG=C" {
		t.Fatalf("childEnv = %q", got)
	}
}

func TestAServerThatCannotBindItsPortIsReportedAsABindFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	c, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	c.Port = taken.Addr().(*net.TCPAddr).Port
	if err := c.writeConf(); err != nil {
		t.Fatal(err)
	}
	bindFailed, err := c.startServer()
	if err == nil || !bindFailed {
		t.Fatalf("bindFailed=%v err=%v, want a bind failure", bindFailed, err)
	}
	if !strings.Contains(err.Error(), "server log") {
		t.Fatalf("error lacks the server log tail: %v", err)
	}
	t.Logf("error as reported: %v", err)
}
