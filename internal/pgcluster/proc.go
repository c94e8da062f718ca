package pgcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// childEnv drops PG* variables, so a developer's PGHOST/PGPORT/PGDATA cannot
// steer initdb or pg_ctl at another server, and pins the C locale, so initdb
// does not trip over locales missing on the machine.
func childEnv(parent []string) []string {
	env := make([]string, 0, len(parent)+2)
	for _, kv := range parent {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(key, "PG") || strings.HasPrefix(key, "LC_") ||
			key == "LANG" || key == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// sysProcAttr runs children as the server's OS user and in their own process
// group, so a Ctrl-C aimed at the calling program (`go test`, `pgvalve demo`)
// reaches them only through Stop or the watchdog, never half way through
// initdb.
func (c *Cluster) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
}

// run runs a binary from BinDir and returns its combined output; a failure's
// error carries that output.
func (c *Cluster) run(name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.BinDir, name), args...)
	// initdb and pg_ctl resolve the working directory; the caller's may not be
	// readable by the postgres user.
	cmd.Dir = c.root
	cmd.Env = c.env
	cmd.SysProcAttr = c.sysProcAttr()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// If a grandchild ever kept the output pipe open, Wait must not hang.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("pgcluster: %s %s: %w\n%s",
			name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// startWatchdog starts a shell that waits for EOF on a pipe only this process
// holds open. The pipe closes when Stop closes it or when this process dies
// in any way (panic, test timeout, SIGKILL), and the shell then stops the
// server and removes the temp dir, so a crashed caller leaves nothing behind.
func (c *Cluster) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgcluster: watchdog pipe: %w", err)
	}
	const script = `read line; "$0" stop -D "$1" -m immediate -s >/dev/null 2>&1; rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script,
		filepath.Join(c.BinDir, "pg_ctl"), c.DataDir, c.root)
	cmd.Stdin = r // an *os.File is handed over directly: no copying goroutine
	cmd.Dir = "/"
	cmd.Env = c.env
	cmd.SysProcAttr = c.sysProcAttr()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("pgcluster: start watchdog: %w", err)
	}
	r.Close()
	c.watchdog, c.watchdogPipe = cmd, w
	return nil
}

// logTail returns the last lines of the log written after offset.
func logTail(path string, offset int64) string {
	const maxBytes = 4096
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if offset > 0 && offset <= int64(len(data)) {
		data = data[offset:]
	}
	if len(data) > maxBytes {
		data = data[len(data)-maxBytes:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "(log is empty)"
	}
	return strings.TrimRight(string(data), "\n")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
