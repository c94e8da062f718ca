//go:build linux

package relaylab_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/procstat"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/poolers"
)

// startPgBouncer runs PgBouncer in front of the cluster as a reference for
// the designs, in mode (session: one server per client, as the lab's relay;
// transaction: a pool of poolSize) and returns its port and process id. It
// skips when PgBouncer is not installed.
func startPgBouncer(b *testing.B, mode string, poolSize int) (port, pid int) {
	b.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	cmd := poolers.StartPgBouncer(b, poolers.PgBouncer{Dir: b.TempDir(), Host: cluster.Host, Port: cluster.Port,
		User: cluster.User, Password: cluster.Password, Mode: mode, PoolSize: poolSize, MaxClients: 1000}, port)
	return port, cmd.Process.Pid
}

// startPgvalve runs the pgvalve binary that -relaylab.pgvalve names in
// front of the cluster, as the product to compare the lab's relays with,
// and returns its port and process id; it skips without the flag.
func startPgvalve(b *testing.B, mode string, poolSize int) (port, pid int) {
	b.Helper()
	if *benchPgvalve == "" {
		b.Skip("no -relaylab.pgvalve binary (go build -o /tmp/pgvalve ./cmd/pgvalve): no pgvalve run")
	}
	port, err := pgtest.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	upstream := fmt.Sprintf("postgres://%s@%s:%d/%s", cluster.User, cluster.Host, cluster.Port, cluster.Database)
	cmd := poolers.Start(b, port, *benchPgvalve, "run", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--upstream", upstream, "--auth-type", "trust", "--pool-mode", mode, "--pool-size", strconv.Itoa(poolSize),
		"--max-client-conn", "1000", "--log-level", "warn")
	return port, cmd.Process.Pid
}

// sampleProc is another process's resource use from /proc: clock ticks
// (10 ms) of CPU, its live threads' context switches and read(2)/write(2)
// counts.
func sampleProc(b *testing.B, pid int) usage {
	b.Helper()
	var u usage
	var err error
	if u.user, u.sys, err = procstat.CPU(pid); err != nil {
		b.Fatal(err)
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range tasks {
		status, err := os.ReadFile(path)
		if err != nil {
			continue // the thread has just ended
		}
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				u.vcsw += n
			case "nonvoluntary_ctxt_switches":
				u.ivcsw += n
			}
		}
	}
	u.syscr, u.syscw = ioCounts(b, fmt.Sprintf("/proc/%d/io", pid))
	return u
}
