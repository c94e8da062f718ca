package loadgen

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/procstat"
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
	user, sys, err := procstat.CPU(o.pid)
	used, now := (user + sys).Seconds(), time.Now()
	if err == nil {
		if !o.lastAt.IsZero() {
			pct := 100 * (used - o.lastCPU) / now.Sub(o.lastAt).Seconds()
			cpu = &pct
		}
		o.lastCPU, o.lastAt = used, now
	}
	if n, err := procstat.RSS(o.pid); err == nil {
		mb := float64(n) / (1 << 20)
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
