package loadgen

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// connectTimeout bounds one login of the app's pools, as an ORM's
// connect_timeout does, unless the target URL sets its own.
const connectTimeout = 5 * time.Second

// app is the simulated web application in front of one target: its
// instances' pools, the users loading pages through them, and the
// background workers. Users and workers are goroutines it owns; stop ends
// them and closes the pools.
type app struct {
	cfg     Config
	rec     *recorder
	pools   []*pgxpool.Pool // one per app instance
	workers []*pgxpool.Pool // one per worker, of 2
	ctx     context.Context
	cancel  context.CancelFunc
	users   []context.CancelFunc
	wg      sync.WaitGroup
	seed    uint64
}

func newApp(cfg Config, target string, rec *recorder, seed uint64) (*app, error) {
	a := &app{cfg: cfg, rec: rec, seed: seed}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	for range cfg.AppInstances {
		p, err := newPool(cfg, target, cfg.ClientPool)
		if err != nil {
			a.stop()
			return nil, err
		}
		a.pools = append(a.pools, p)
	}
	for i := range cfg.Workers {
		p, err := newPool(cfg, target, 2)
		if err != nil {
			a.stop()
			return nil, err
		}
		a.workers = append(a.workers, p)
		a.wg.Go(func() { a.worker(p, i) })
	}
	return a, nil
}

// newPool is one app instance's client-side pool: it logs in lazily, up
// to size connections, with named prepared statements when the config
// asks (pgx's statement cache, as Prisma prepares its queries).
func newPool(cfg Config, target string, size int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(target)
	if err != nil {
		return nil, err
	}
	pc.MaxConns, pc.MinConns = int32(size), 0
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = connectTimeout
	}
	pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.Prepared {
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// setUsers starts or stops users until n load pages.
func (a *app) setUsers(n int) {
	for len(a.users) < n {
		i := len(a.users)
		ctx, cancel := context.WithCancel(a.ctx)
		a.users = append(a.users, cancel)
		a.wg.Go(func() { a.user(ctx, i) })
	}
	for len(a.users) > n {
		a.users[len(a.users)-1]()
		a.users = a.users[:len(a.users)-1]
	}
}

// stop ends every user and worker and closes the pools.
func (a *app) stop() {
	a.cancel()
	a.wg.Wait()
	for _, p := range append(a.pools, a.workers...) {
		p.Close()
	}
}

// user loads pages through its instance's pool until ctx ends, thinking
// between them.
func (a *app) user(ctx context.Context, i int) {
	r := rand.New(rand.NewPCG(a.seed, uint64(i)))
	pool := a.pools[i%len(a.pools)]
	for ctx.Err() == nil {
		a.page(ctx, pool, r)
		think := time.Duration(float64(a.cfg.Think) * (0.5 + r.Float64()))
		if !sleep(ctx, think) {
			return
		}
	}
}

// page fires its queries at once and waits for them all, as a page
// handler awaiting Promise.all does.
func (a *app) page(ctx context.Context, pool *pgxpool.Pool, r *rand.Rand) {
	n := a.cfg.PageMin + r.IntN(a.cfg.PageMax-a.cfg.PageMin+1)
	qs := make([]query, n)
	for i := range qs {
		qs[i] = a.cfg.pick(r)
	}
	if a.cfg.IdleInTransactionRate > 0 && r.Float64() < a.cfg.IdleInTransactionRate {
		qs[0] = idleInTransaction(r, a.cfg.Scale)
	}
	start := time.Now()
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Go(func() {
			if !a.run(ctx, pool, q) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if ctx.Err() == nil { // a page cut short by the run's end says nothing
		a.rec.page(time.Since(start), failed.Load())
	}
}

// worker runs its job every second until the app stops.
func (a *app) worker(pool *pgxpool.Pool, i int) {
	r := rand.New(rand.NewPCG(a.seed, 1<<32+uint64(i)))
	for sleep(a.ctx, time.Second) {
		a.run(a.ctx, pool, workerJob(r, a.cfg.Scale))
	}
}

// run runs q, and again at once on failure up to ClientRetry times, as a
// naive app's retry does; every try is counted. It reports success.
func (a *app) run(ctx context.Context, pool *pgxpool.Pool, q query) bool {
	for try := 0; ; try++ {
		start := time.Now()
		acquiring, err := a.once(ctx, pool, q)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			a.rec.query(time.Since(start), nil)
			return true
		}
		f := Classify(err, acquiring)
		a.rec.query(time.Since(start), &f)
		if try >= a.cfg.ClientRetry {
			return false
		}
	}
}

// once takes a connection from the pool and runs q's statements on it.
// acquiring says an error came from taking the connection.
func (a *app) once(ctx context.Context, pool *pgxpool.Pool, q query) (acquiring bool, err error) {
	actx, cancel := context.WithTimeout(ctx, a.cfg.PoolTimeout)
	conn, err := pool.Acquire(actx)
	cancel()
	if err != nil {
		return true, err
	}
	defer conn.Release() // a connection left in a transaction is closed by the pool
	qctx, cancel := context.WithTimeout(ctx, a.cfg.QueryTimeout)
	defer cancel()
	for i, st := range q.steps {
		if q.hold > 0 && i == len(q.steps)-1 && !sleep(qctx, q.hold) {
			return false, qctx.Err()
		}
		if _, err := conn.Exec(qctx, st.sql, st.args...); err != nil {
			return false, err
		}
	}
	return false, nil
}

// sleep waits d or until ctx ends; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
