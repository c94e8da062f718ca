//go:build linux

package relaylab_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgvalve/pgvalve/internal/relaylab"
)

var (
	benchSeconds  = flag.Int("relaylab.T", 5, "seconds each pgbench run lasts (-T)")
	benchClients  = flag.Int("relaylab.clients", 50, "pgbench clients (-c)")
	benchProtocol = flag.String("relaylab.protocol", "simple", "pgbench protocol (-M)")
	benchScale    = flag.Int("relaylab.scale", 10, "pgbench scale factor (-i -s)")
	benchRounds   = flag.Int("relaylab.rounds", 1, "rounds, each running every design once in turn")
	benchPgvalve  = flag.String("relaylab.pgvalve", "", "a pgvalve binary to run as a reference (none when empty)")
	benchConnect  = flag.Bool("relaylab.C", false, "pgbench opens a connection per transaction (-C)")
	benchOnly     = flag.String("relaylab.only", "", "a regular expression: run only the cases whose names it matches")
)

// benchCase is one sub-benchmark: relay nil and bouncer empty is pgbench
// straight to PostgreSQL; procs > 0 sets GOMAXPROCS for the run; pooler
// starts an external pooler as a reference, in mode (session: one server
// per client, as the lab's relays; transaction: a pool of 20).
type benchCase struct {
	name   string
	procs  int
	relay  *relaylab.Options
	pooler func(b *testing.B, mode string, poolSize int) (port, pid int)
	mode   string
}

var benchCases = []benchCase{
	{name: "direct"},
	{name: "goroutines/procs=2", procs: 2, relay: &relaylab.Options{Design: relaylab.Goroutines}},
	{name: "goroutines/procs=1", procs: 1, relay: &relaylab.Options{Design: relaylab.Goroutines}},
	{name: "eventloop/edge/loops=2", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Trigger: relaylab.Edge}},
	{name: "eventloop/edge/loops=1", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 1, Trigger: relaylab.Edge}},
	{name: "eventloop/edge/loops=1/procs=1", procs: 1, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 1, Trigger: relaylab.Edge}},
	{name: "eventloop/edge/loops=1/spin=20", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 1, Trigger: relaylab.Edge, Spin: 20}},
	{name: "eventloop/edge/loops=2/unlocked", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Unlocked: true}},
	{name: "eventloop/edge/loops=1/unlocked", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 1, Unlocked: true}},
	{name: "eventloop/level/loops=2", procs: 2, relay: &relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Trigger: relaylab.Level}},
	{name: "pooled/pool=20", procs: 2, relay: &relaylab.Options{Design: relaylab.Pooled, PoolSize: 20}},
	{name: "pooled/pool=20/procs=1", procs: 1, relay: &relaylab.Options{Design: relaylab.Pooled, PoolSize: 20}},
	{name: "pgbouncer/session", pooler: startPgBouncer, mode: "session"},
	{name: "pgbouncer/transaction/pool=20", pooler: startPgBouncer, mode: "transaction"},
	{name: "pgvalve/session", pooler: startPgvalve, mode: "session"},
	{name: "pgvalve/transaction/pool=20", pooler: startPgvalve, mode: "transaction"},
}

// BenchmarkRelayDesigns runs pgbench -S through each design and reports
// this process's cost per transaction; see the package comment.
func BenchmarkRelayDesigns(b *testing.B) {
	initPgbench(b)
	only, err := regexp.Compile(*benchOnly)
	if err != nil {
		b.Fatalf("-relaylab.only: %v", err)
	}
	for round := range *benchRounds {
		for _, c := range benchCases {
			if !only.MatchString(c.name) {
				continue
			}
			name := c.name
			if *benchRounds > 1 {
				name = fmt.Sprintf("%s/round=%d", c.name, round+1)
			}
			b.Run(name, func(b *testing.B) { runBenchCase(b, c) })
		}
	}
}

var (
	pgbenchInit    sync.Once
	pgbenchInitErr error
)

// initPgbench skips without pgbench, else creates its tables once.
func initPgbench(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath(cluster.PgBench()); err != nil {
		b.Skipf("pgbench is needed for this benchmark and was not found (%v): install PostgreSQL's client tools", err)
	}
	pgbenchInit.Do(func() {
		out, err := pgbench(cluster.Port, "-i", "-q", "-s", strconv.Itoa(*benchScale))
		if err != nil {
			pgbenchInitErr = fmt.Errorf("pgbench -i: %v\n%s", err, out)
		}
	})
	if pgbenchInitErr != nil {
		b.Fatal(pgbenchInitErr)
	}
}

func pgbench(port int, args ...string) ([]byte, error) {
	base := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", cluster.User}
	cmd := exec.Command(cluster.PgBench(), append(append(base, args...), cluster.Database)...)
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password}
	return cmd.CombinedOutput()
}

func runBenchCase(b *testing.B, c benchCase) {
	if c.procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(c.procs))
	}
	port := cluster.Port
	var relay *relaylab.Relay
	sample := func() usage { return sampleSelf(b) }
	switch {
	case c.relay != nil:
		relay = startRelay(b, *c.relay)
		port = relay.Addr().Port
	case c.pooler != nil:
		poolSize := *benchClients
		if c.mode == "transaction" {
			poolSize = 20
		}
		var pid int
		port, pid = c.pooler(b, c.mode, poolSize)
		sample = func() usage { return sampleProc(b, pid) }
	}
	var txns int
	var tps float64
	var cost usage
	var waits, events int64
	for range b.N {
		before := sample()
		w0, e0 := relayWaits(relay)
		args := []string{"-n", "-S", "-M", *benchProtocol, "-c", strconv.Itoa(*benchClients),
			"-j", "2", "-T", strconv.Itoa(*benchSeconds)}
		if *benchConnect {
			args = append(args, "-C")
		}
		out, err := pgbench(port, args...)
		cost = cost.plus(sample().minus(before))
		w1, e1 := relayWaits(relay)
		waits, events = waits+w1-w0, events+e1-e0
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		txns += int(matchFloat(b, out, `number of transactions actually processed: (\d+)`))
		tps += matchFloat(b, out, `tps = ([\d.]+) \((?:without initial connection time|including reconnection times)\)`)
	}
	if txns == 0 {
		b.Fatal("pgbench processed no transactions")
	}
	per := func(v float64) float64 { return v / float64(txns) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(tps/float64(b.N), "tps")
	b.ReportMetric(per(float64((cost.user + cost.sys).Microseconds())), "cpu-µs/txn")
	b.ReportMetric(per(float64(cost.sys.Microseconds())), "sys-µs/txn")
	b.ReportMetric(per(float64(cost.vcsw)), "vcs/txn")
	b.ReportMetric(per(float64(cost.ivcsw)), "ivcs/txn")
	if c.pooler == nil { // PgBouncer's recv and send are not in /proc/PID/io's counts
		b.ReportMetric(per(float64(cost.syscr)), "reads/txn")
		b.ReportMetric(per(float64(cost.syscw)), "writes/txn")
	}
	if waits > 0 {
		b.ReportMetric(per(float64(waits)), "sleeps/txn")
		b.ReportMetric(per(float64(events)), "events/txn")
	}
}

func relayWaits(r *relaylab.Relay) (sleeps, events int64) {
	if r == nil {
		return 0, 0
	}
	return r.Waits()
}

// usage is a process's resource use: for this process all its threads, not
// its children (pgbench) nor PostgreSQL.
type usage struct {
	user, sys    time.Duration
	vcsw, ivcsw  int64
	syscr, syscw int64 // read(2) and write(2) calls (not recv/send), EAGAIN included
}

func sampleSelf(b *testing.B) usage {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	u := usage{
		user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()),
		vcsw: ru.Nvcsw, ivcsw: ru.Nivcsw,
	}
	u.syscr, u.syscw = ioCounts(b, "/proc/self/io")
	return u
}

// ioCounts reads syscr and syscw from a /proc/PID/io (per process, kept by
// the kernel at no cost).
func ioCounts(b *testing.B, path string) (syscr, syscw int64) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatalf("read and write counts: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var name string
		var v int64
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &name, &v); err != nil {
			continue
		}
		switch name {
		case "syscr:":
			syscr = v
		case "syscw:":
			syscw = v
		}
	}
	return syscr, syscw
}

func (u usage) minus(v usage) usage {
	return usage{u.user - v.user, u.sys - v.sys, u.vcsw - v.vcsw, u.ivcsw - v.ivcsw, u.syscr - v.syscr, u.syscw - v.syscw}
}

func (u usage) plus(v usage) usage {
	return usage{u.user + v.user, u.sys + v.sys, u.vcsw + v.vcsw, u.ivcsw + v.ivcsw, u.syscr + v.syscr, u.syscw + v.syscw}
}

func matchFloat(b *testing.B, out []byte, pattern string) float64 {
	b.Helper()
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench output lacks %q:\n%s", pattern, out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
