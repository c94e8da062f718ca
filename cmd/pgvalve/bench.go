package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/pgvalve/pgvalve/internal/loadgen"
)

// pids collects --observe-pid, once per target.
type pids []int

func (p *pids) String() string { return fmt.Sprint(*p) }
func (p *pids) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a process ID", v)
	}
	*p = append(*p, n)
	return nil
}

// benchOpts are bench's flags that are not the load's.
type benchOpts struct {
	scenario, setupURL, jsonOut, htmlOut string
	setup, teardown                      bool
}

// benchFlags binds bench's flags to cfg and o; cfg's values are the
// defaults shown.
func benchFlags(cfg *loadgen.Config, o *benchOpts, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var((*stringList)(&cfg.Targets), "target", "a PostgreSQL URL to load (PostgreSQL itself, pgvalve, PgBouncer, ...), or name=URL to name it in the reports; once per target")
	fs.StringVar(&o.scenario, "scenario", "", "a preset load: many-pools (10 app instances × 25-connection pools, naive retry)")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "virtual users in the steady phase")
	fs.IntVar(&cfg.AppInstances, "app-instances", cfg.AppInstances, "app instances, each with its own pool")
	fs.IntVar(&cfg.ClientPool, "client-pool", cfg.ClientPool, "connections in each app instance's pool")
	fs.DurationVar(&cfg.PoolTimeout, "pool-timeout", cfg.PoolTimeout, "how long a query waits for its instance's pool")
	fs.DurationVar(&cfg.QueryTimeout, "query-timeout", cfg.QueryTimeout, "how long a query waits for its answer")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "background workers, each with a pool of 2")
	fs.IntVar(&cfg.PageMin, "page-min", cfg.PageMin, "fewest queries a page fires at once")
	fs.IntVar(&cfg.PageMax, "page-max", cfg.PageMax, "most queries a page fires at once")
	fs.DurationVar(&cfg.Think, "think", cfg.Think, "mean pause between a user's pages")
	fs.BoolVar(&cfg.Prepared, "prepared", cfg.Prepared, "named prepared statements, as Prisma (false: unnamed)")
	fs.IntVar(&cfg.Scale, "scale", cfg.Scale, "seed data: scale × 1,000 users, 5 posts each, 2 comments a post")
	fs.Float64Var(&cfg.SlowQueryRate, "slow-query-rate", cfg.SlowQueryRate, "share of queries that take 0.2-1 s")
	fs.Float64Var(&cfg.IdleInTransactionRate, "idle-in-transaction-rate", cfg.IdleInTransactionRate, "share of pages that sit in a transaction for 1 s")
	fs.IntVar(&cfg.ClientRetry, "client-retry", cfg.ClientRetry, "times a failed query is tried again at once, as a naive app retries")
	fs.DurationVar(&cfg.Phase, "duration", cfg.Phase, "length of each phase (ramp-up, steady, spike, restart, recovery)")
	fs.IntVar(&cfg.SpikeFactor, "spike-factor", cfg.SpikeFactor, "users in the spike phase: users × this")
	fs.StringVar(&cfg.RestartCmd, "restart-cmd", cfg.RestartCmd, "a shell command that restarts PostgreSQL, run at the restart phase's start (none: no such phase)")
	fs.StringVar(&cfg.ObserveURL, "observe-url", cfg.ObserveURL, "a PostgreSQL URL whose pg_stat_activity is sampled each second")
	fs.Var((*pids)(&cfg.ObservePIDs), "observe-pid", "a local pooler's PID whose CPU and memory are sampled while its target runs; once per target, in the targets' order (0: none)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "runs of each target, in turns")
	fs.BoolVar(&o.setup, "setup", false, "create the benchmark's schema and seed data first (schema "+loadgen.Schema+", replaced)")
	fs.StringVar(&o.setupURL, "setup-url", "", "where --setup and --teardown work (default: the first target)")
	fs.BoolVar(&o.teardown, "teardown", false, "drop the benchmark's schema at the end")
	fs.StringVar(&o.jsonOut, "json", "", "write every measurement to this JSON file")
	fs.StringVar(&o.htmlOut, "html", "", "write a self-contained HTML report (charts over time) to this file")
	return fs
}

// parseBench reads bench's flags: a scenario's settings first, then the
// flags given, which override them.
func parseBench(args []string, stderr io.Writer) (loadgen.Config, benchOpts, error) {
	var o benchOpts
	probe := loadgen.Defaults()
	_ = benchFlags(&probe, &o, io.Discard).Parse(args) // only for --scenario; the parse below reports errors
	cfg := loadgen.Defaults()
	if err := cfg.Scenario(o.scenario); err != nil {
		return cfg, o, err
	}
	o = benchOpts{}
	if err := benchFlags(&cfg, &o, stderr).Parse(args); err != nil {
		return cfg, o, err
	}
	return cfg, o, cfg.Validate()
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	cfg, o, err := parseBench(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgvalve bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	setupURL := o.setupURL
	if setupURL == "" {
		_, setupURL = loadgen.SplitTarget(cfg.Targets[0])
	}
	if o.setup {
		if err := loadgen.Setup(ctx, setupURL, cfg.Scale); err != nil {
			fmt.Fprintf(stderr, "pgvalve bench: %v\n", err)
			return 1
		}
	}
	res, err := loadgen.Run(ctx, cfg, loadgen.Printer(stderr, isTerminal(stderr)))
	fmt.Fprintln(stderr)
	if res != nil {
		_ = res.WriteTable(stdout)
		for path, write := range map[string]func(string) error{o.jsonOut: res.WriteJSON, o.htmlOut: res.WriteHTML} {
			if path == "" {
				continue
			}
			if werr := write(path); werr != nil {
				fmt.Fprintf(stderr, "pgvalve bench: %v\n", werr)
				return 1
			}
		}
	}
	if o.teardown {
		if terr := loadgen.Teardown(context.WithoutCancel(ctx), setupURL); terr != nil {
			fmt.Fprintf(stderr, "pgvalve bench: %v\n", terr)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "pgvalve bench: %v\n", err)
		return 1
	}
	return 0
}

// isTerminal reports whether w is a terminal (a live progress line) and
// not a file or pipe (plain lines).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
