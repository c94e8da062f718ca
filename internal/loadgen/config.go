// Package loadgen replays the database load of a web application against
// one or more PostgreSQL endpoints (PostgreSQL itself, pgvalve, PgBouncer,
// anything that speaks the protocol) and measures what each does to it:
// page and query latencies per phase, errors as the application sees them,
// and, when asked, the server connections and a pooler's CPU and memory.
// It is what `pgvalve bench` runs.
//
// The model is a Node/Prisma-style app: several app instances, each with
// its own client-side pool; virtual users that load pages, each page
// firing several queries at once through their instance's pool, then
// think; background workers with pools of their own.
package loadgen

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is one benchmark: its targets and the load.
type Config struct {
	Targets []string // connection URLs, each run with the same load; "name=URL" names one in the reports

	Users        int           // virtual users in the steady phase
	AppInstances int           // app instances, each with its own pool
	ClientPool   int           // connections in each instance's pool
	PoolTimeout  time.Duration // how long a query waits for its instance's pool
	QueryTimeout time.Duration // how long it waits for its answer
	Workers      int           // background workers, each with a pool of 2
	PageMin      int           // queries a page fires at once: PageMin..PageMax
	PageMax      int
	Think        time.Duration // mean pause between a user's pages (uniform, ±50%)
	Prepared     bool          // named prepared statements (pgx's statement cache), as Prisma
	Scale        int           // seed data: Scale × 1,000 users, 5 posts each, 2 comments a post

	// Faults: a share of queries that run slowly (pg_sleep 0.2–1 s), a
	// share of pages that hold a transaction idle for a second, and how
	// many times a failed query is tried again at once, holding its page.
	SlowQueryRate         float64
	IdleInTransactionRate float64
	ClientRetry           int

	Phase       time.Duration // each phase's length
	SpikeFactor int           // users in the spike phase: Users × SpikeFactor
	RestartCmd  string        // run by sh -c at the start of the restart phase; none: no such phase

	ObserveURL  string // a PostgreSQL whose pg_stat_activity is sampled each second
	ObservePIDs []int  // per target, in order: a local pooler whose CPU and RSS are sampled each second (0: none)
	Rounds      int    // each target runs Rounds times, in turns
}

// Defaults are the load of a small web app: 50 users over 4 instances,
// each with a pool of 10 (Prisma's default is 2 × cores + 1) that waits
// 10 s for a connection (Prisma's pool_timeout), and 2 workers.
func Defaults() Config {
	return Config{
		Users: 50, AppInstances: 4, ClientPool: 10, PoolTimeout: 10 * time.Second, QueryTimeout: 30 * time.Second,
		Workers: 2, PageMin: 8, PageMax: 12, Think: 500 * time.Millisecond, Prepared: true, Scale: 1,
		Phase: 20 * time.Second, SpikeFactor: 3, Rounds: 1,
	}
}

// Scenario applies a named scenario's settings to c.
func (c *Config) Scenario(name string) error {
	switch name {
	case "", "default":
	case "many-pools":
		// The seeds' story: every instance opens its own pool of 25
		// against a PostgreSQL with max_connections = 100, and retries
		// what fails.
		c.AppInstances, c.ClientPool, c.ClientRetry = 10, 25, 3
		c.Users, c.Workers = 100, 4
	default:
		return fmt.Errorf("unknown scenario %q (want default or many-pools)", name)
	}
	return nil
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("no --target"))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--users", c.Users}, {"--app-instances", c.AppInstances}, {"--client-pool", c.ClientPool},
		{"--page-min", c.PageMin}, {"--scale", c.Scale}, {"--spike-factor", c.SpikeFactor}, {"--rounds", c.Rounds}} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, not %d", f.name, f.v))
		}
	}
	if c.PageMax < c.PageMin {
		errs = append(errs, fmt.Errorf("--page-max (%d) is below --page-min (%d)", c.PageMax, c.PageMin))
	}
	if c.Workers < 0 || c.ClientRetry < 0 {
		errs = append(errs, errors.New("--workers and --client-retry cannot be negative"))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"--slow-query-rate", c.SlowQueryRate}, {"--idle-in-transaction-rate", c.IdleInTransactionRate}} {
		if r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1, not %g", r.name, r.v))
		}
	}
	if len(c.ObservePIDs) > len(c.Targets) {
		errs = append(errs, fmt.Errorf("%d --observe-pid for %d --target; give one per target, in order (0 for none)", len(c.ObservePIDs), len(c.Targets)))
	}
	if c.Phase <= 0 || c.PoolTimeout <= 0 || c.QueryTimeout <= 0 {
		errs = append(errs, errors.New("--duration, --pool-timeout and --query-timeout must be positive"))
	}
	return errors.Join(errs...)
}

// SplitTarget splits "name=postgres://..." into its name and URL; a bare
// URL (or a keyword/value string) has no name.
func SplitTarget(t string) (name, url string) {
	if i := strings.IndexByte(t, '='); i > 0 && !strings.ContainsAny(t[:i], ":/ ") &&
		(strings.HasPrefix(t[i+1:], "postgres://") || strings.HasPrefix(t[i+1:], "postgresql://")) {
		return t[:i], t[i+1:]
	}
	return "", t
}

// observePID is the pooler to sample while target i runs, or 0.
func (c Config) observePID(i int) int {
	if i < len(c.ObservePIDs) {
		return c.ObservePIDs[i]
	}
	return 0
}

// Phase is one stretch of the run with its own load.
type Phase struct {
	Name  string
	Users int  // users at the end of the phase
	Ramp  bool // users start one by one over the phase
	// Restart runs Config.RestartCmd at the phase's start.
	Restart bool
}

// Phases are the run's phases in order: ramp-up, steady, spike, restart
// (only with a restart command), recovery.
func (c Config) Phases() []Phase {
	ps := []Phase{
		{Name: "ramp-up", Users: c.Users, Ramp: true},
		{Name: "steady", Users: c.Users},
		{Name: "spike", Users: c.Users * c.SpikeFactor},
	}
	if c.RestartCmd != "" {
		ps = append(ps, Phase{Name: "restart", Users: c.Users, Restart: true})
	}
	return append(ps, Phase{Name: "recovery", Users: c.Users})
}
