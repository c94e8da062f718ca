// Package poolers starts the poolers that benchmarks run pgvalve beside
// (PgBouncer, a built pgvalve) as processes on loopback, and stops them by
// their PID when the benchmark ends.
package poolers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PgBouncer is how StartPgBouncer configures PgBouncer: every database of
// the server at Host:Port, reached as User, trusting its own clients.
type PgBouncer struct {
	Dir            string // where its files go (a test's TempDir)
	Host           string
	Port           int
	User, Password string
	Mode           string // pool_mode
	PoolSize       int
	MaxClients     int // max_client_conn; its file limit is raised to fit them
}

// StartPgBouncer runs PgBouncer as c says on the loopback port and
// returns once it listens; it skips when PgBouncer is not installed.
func StartPgBouncer(tb testing.TB, c PgBouncer, port int) *exec.Cmd {
	tb.Helper()
	if _, err := exec.LookPath("pgbouncer"); err != nil {
		tb.Skip("pgbouncer is not on PATH")
	}
	users := filepath.Join(c.Dir, "userlist.txt")
	ini := filepath.Join(c.Dir, "pgbouncer.ini")
	conf := fmt.Sprintf(`[databases]
* = host=%s port=%d user=%s password=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = %d
`, c.Host, c.Port, c.User, c.Password, port, users, c.Mode, c.PoolSize, c.MaxClients)
	for path, body := range map[string]string{ini: conf, users: fmt.Sprintf("%q %q\n", c.User, c.Password)} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	run := "exec pgbouncer " + ini
	if os.Geteuid() == 0 {
		run = "exec pgbouncer -u nobody " + ini // it refuses to run as root: it must read its files
		_ = os.Chmod(c.Dir, 0o755)
	}
	// A raised file limit, when the hard limit allows it: one descriptor per client.
	return Start(tb, port, "sh", "-c", "ulimit -n "+strconv.Itoa(c.MaxClients+100)+" 2>/dev/null; "+run)
}

// Start runs name with args, kills it when tb ends (unless it was waited
// for already), and returns once it listens on the loopback port; its
// output is logged if tb fails.
func Start(tb testing.TB, port int, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not listen on %s", name, addr)
		}
	}
}
