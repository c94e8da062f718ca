package pgcluster

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// defaultBinGlob is where Debian and Ubuntu install the server binaries.
const defaultBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the directory holding initdb, pg_ctl and postgres:
// `pg_config --bindir` if it holds initdb (on Debian it may name /usr/bin,
// which has only the client tools), else the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	return findBinDir("pg_config", defaultBinGlob)
}

func findBinDir(pgConfig, glob string) (string, error) {
	var tried string
	if path, err := exec.LookPath(pgConfig); err != nil {
		tried = "pg_config is not on PATH"
	} else if out, err := exec.Command(path, "--bindir").Output(); err != nil {
		tried = fmt.Sprintf("`%s --bindir` failed: %v", path, err)
	} else {
		dir := strings.TrimSpace(string(out))
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
		tried = fmt.Sprintf("`pg_config --bindir` names %s, which has no initdb", dir)
	}

	matches, _ := filepath.Glob(filepath.Join(glob, "initdb"))
	var dirs []string
	for _, m := range matches {
		if isExecutable(m) {
			dirs = append(dirs, filepath.Dir(m))
		}
	}
	if len(dirs) == 0 {
		return "", fmt.Errorf("PostgreSQL server binaries not found: %s, and there is no %s",
			tried, filepath.Join(glob, "initdb"))
	}
	// The version is the directory above bin, e.g. /usr/lib/postgresql/15/bin.
	return slices.MaxFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	}), nil
}

// compareVersions orders dotted numeric versions ("9.6" < "15"); non-numeric
// parts count as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return strings.Compare(a, b)
}

// FreePort returns a currently free TCP port on 127.0.0.1. Another process
// may take it before it is used; Start retries on a new port if that happens.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
