package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sample is what the observers saw at the end of one second: the client
// backends of the observed PostgreSQL (by state) and a local pooler's CPU
// and memory. A field the run does not observe is absent.
type Sample struct {
	ServerConns *int     `json:"server_conns,omitempty"` // every client backend
	IdleInTx    *int     `json:"idle_in_transaction,omitempty"`
	PoolerCPU   *float64 `json:"pooler_cpu_pct,omitempty"` // of one core
	PoolerRSS   *float64 `json:"pooler_rss_mb,omitempty"`
}

// observer takes Samples: one connection to the observed PostgreSQL
// (opened lazily, again after a failure, as during a restart) and the
// pooler's /proc entries.
type observer struct {
	url     string
	pid     int
	conn    *pgx.Conn
	lastCPU float64 // seconds of CPU the pooler had used at the last sample
	lastAt  time.Time
}

// backendsQuery counts the client backends but the observer's own.
const backendsQuery = `SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%')
	FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()`

func (o *observer) sample(ctx context.Context) Sample {
	var s Sample
	if o.url != "" {
		s.ServerConns, s.IdleInTx = o.backends(ctx)
	}
	if o.pid > 0 {
		s.PoolerCPU, s.PoolerRSS = o.pooler()
	}
	return s
}

func (o *observer) backends(ctx context.Context) (total, idleInTx *int) {
	ctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	if o.conn == nil {
		c, err := pgx.Connect(ctx, o.url)
		if err != nil {
			return nil, nil // down, or full: the gap in the chart says so
		}
		o.conn = c
	}
	var n, idle int
	if err := o.conn.QueryRow(ctx, backendsQuery).Scan(&n, &idle); err != nil {
		o.close()
		return nil, nil
	}
	return &n, &idle
}

func (o *observer) pooler() (cpu, rss *float64) {
	used, err := procCPU(o.pid)
	now := time.Now()
	if err == nil {
		if !o.lastAt.IsZero() {
			pct := 100 * (used - o.lastCPU) / now.Sub(o.lastAt).Seconds()
			cpu = &pct
		}
		o.lastCPU, o.lastAt = used, now
	}
	if mb, err := procRSS(o.pid); err == nil {
		rss = &mb
	}
	return cpu, rss
}

func (o *observer) close() {
	if o.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = o.conn.Close(ctx)
		o.conn = nil
	}
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc's times.
const clockTicks = 100

// procCPU is the CPU time process pid has used, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return (utime + stime) / clockTicks, nil
}

// procRSS is process pid's resident memory, in MiB.
func procRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
