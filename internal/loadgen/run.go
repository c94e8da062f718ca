package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os/exec"
	"sync"
	"time"
)

// Result is a whole benchmark: every run of every target.
type Result struct {
	Started time.Time   `json:"started"`
	Load    Load        `json:"load"`
	Targets []string    `json:"targets"` // passwords hidden
	Runs    []TargetRun `json:"runs"`
}

// Load is the config as a report shows it.
type Load struct {
	Users                 int     `json:"users"`
	AppInstances          int     `json:"app_instances"`
	ClientPool            int     `json:"client_pool"`
	Workers               int     `json:"workers"`
	Page                  string  `json:"queries_per_page"`
	ThinkMS               int64   `json:"think_ms"`
	Prepared              bool    `json:"prepared"`
	Scale                 int     `json:"scale"`
	SlowQueryRate         float64 `json:"slow_query_rate"`
	IdleInTransactionRate float64 `json:"idle_in_transaction_rate"`
	ClientRetry           int     `json:"client_retry"`
	PhaseSeconds          float64 `json:"phase_seconds"`
	SpikeFactor           int     `json:"spike_factor"`
	Restart               bool    `json:"restart"`
	Rounds                int     `json:"rounds"`
}

// TargetRun is one run of the whole schedule against one target.
type TargetRun struct {
	Target   int           `json:"target"` // index in Result.Targets
	Round    int           `json:"round"`
	Phases   []PhaseResult `json:"phases"`
	Timeline []Second      `json:"timeline"`
	Events   []Event       `json:"events,omitempty"`
	counts   []*counts     // each phase's, for merging rounds
}

// Event is something the run did to the target, such as a restart.
type Event struct {
	At   float64 `json:"t"`
	What string  `json:"what"`
}

// Progress is what a live progress line shows, once a second.
type Progress struct {
	Target  string
	Round   int
	Phase   string
	Users   int
	Pages   int64   // pages in the last second
	PageP95 float64 // ms, over the last second
	Errors  int64   // failed queries in the last second
}

// Run runs the benchmark: every target, Rounds times, in turns (the order
// turns each round, so that drift on the machine hits every target
// alike). progress, if set, is called once a second.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Started: time.Now(), Load: cfg.load()}
	for _, t := range cfg.Targets {
		res.Targets = append(res.Targets, displayName(t))
	}
	for round := range cfg.Rounds {
		for k := range cfg.Targets {
			i := (k + round) % len(cfg.Targets)
			run, err := runTarget(ctx, cfg, i, round, progress)
			if err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, run)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
	}
	return res, nil
}

func (c Config) load() Load {
	return Load{Users: c.Users, AppInstances: c.AppInstances, ClientPool: c.ClientPool, Workers: c.Workers,
		Page: fmt.Sprintf("%d-%d", c.PageMin, c.PageMax), ThinkMS: c.Think.Milliseconds(), Prepared: c.Prepared,
		Scale: c.Scale, SlowQueryRate: c.SlowQueryRate, IdleInTransactionRate: c.IdleInTransactionRate,
		ClientRetry: c.ClientRetry, PhaseSeconds: c.Phase.Seconds(), SpikeFactor: c.SpikeFactor,
		Restart: c.RestartCmd != "", Rounds: c.Rounds}
}

// displayName is how the reports name target t: its given name, else its
// URL without the password.
func displayName(t string) string {
	name, url := SplitTarget(t)
	if name != "" {
		return name
	}
	return Redact(url)
}

// Redact hides a URL's password.
func Redact(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}

// runner is one run against one target.
type runner struct {
	cfg      Config
	run      TargetRun
	rec      *recorder
	app      *app
	obs      *observer
	start    time.Time
	progress func(Progress)
	name     string
	restarts sync.WaitGroup
	mu       sync.Mutex // guards run.Events, which a restart adds to
	// What each phase counted, read once the app has stopped: a query
	// that ends just after its phase still counts in it. A second's counts
	// are read a second after it ends, and dropped (the histograms are
	// most of a run's memory).
	phases  []phaseCounts
	pending *secondCounts // the last second, read at the next
}

type phaseCounts struct {
	p    Phase
	c    *counts
	took time.Duration
}

type secondCounts struct {
	at     time.Duration
	phase  string
	c      *counts
	sample Sample
}

func runTarget(ctx context.Context, cfg Config, i, round int, progress func(Progress)) (TargetRun, error) {
	r := &runner{cfg: cfg, run: TargetRun{Target: i, Round: round}, rec: &recorder{},
		obs: &observer{url: cfg.ObserveURL, pid: cfg.observePID(i)}, progress: progress, name: displayName(cfg.Targets[i])}
	r.rec.phase.Store(newCounts(3))
	r.rec.second.Store(newCounts(2))
	_, url := SplitTarget(cfg.Targets[i])
	a, err := newApp(cfg, url, r.rec, uint64(round+1))
	if err != nil {
		return r.run, fmt.Errorf("target %s: %w", r.name, err)
	}
	r.app = a
	defer r.obs.close()
	r.start = time.Now()
	r.obs.sample(ctx) // the pooler's CPU is measured from here
	for _, p := range cfg.Phases() {
		if ctx.Err() != nil {
			break
		}
		r.phase(ctx, p)
	}
	a.stop()
	r.restarts.Wait()
	for _, pc := range r.phases {
		r.run.Phases = append(r.run.Phases, pc.c.phaseResult(pc.p, pc.took))
		r.run.counts = append(r.run.counts, pc.c)
	}
	r.flushSecond()
	return r.run, nil
}

// phase runs one phase and records its result.
func (r *runner) phase(ctx context.Context, p Phase) {
	c := newCounts(3)
	r.rec.phase.Store(c)
	start := time.Now()
	if p.Restart {
		r.restart(ctx)
	}
	if p.Ramp {
		r.app.setUsers(1)
	} else {
		r.app.setUsers(p.Users)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil && time.Since(start) < r.cfg.Phase {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		r.second(ctx, p)
		if p.Ramp {
			frac := time.Since(start).Seconds() / r.cfg.Phase.Seconds()
			r.app.setUsers(max(1, min(p.Users, int(math.Ceil(frac*float64(p.Users))))))
		}
	}
	r.phases = append(r.phases, phaseCounts{p, c, time.Since(start)})
}

// second closes the timeline's current second.
func (r *runner) second(ctx context.Context, p Phase) {
	c := r.rec.second.Swap(newCounts(2))
	sc := &secondCounts{at: time.Since(r.start), phase: p.Name, c: c, sample: r.obs.sample(ctx)}
	r.flushSecond()
	r.pending = sc
	if r.progress != nil {
		s := c.second(sc.at, p.Name, sc.sample) // as counted so far
		r.progress(Progress{Target: r.name, Round: r.run.Round, Phase: p.Name, Users: len(r.app.users),
			Pages: s.Pages, PageP95: s.PageP95, Errors: s.Errors})
	}
}

// flushSecond reads the pending second into the timeline.
func (r *runner) flushSecond() {
	if sc := r.pending; sc != nil {
		r.run.Timeline = append(r.run.Timeline, sc.c.second(sc.at, sc.phase, sc.sample))
		r.pending = nil
	}
}

// restart runs the restart command beside the load, noting when it
// started and ended.
func (r *runner) restart(ctx context.Context) {
	r.event("restart command started")
	r.restarts.Go(func() {
		out, err := exec.CommandContext(ctx, "sh", "-c", r.cfg.RestartCmd).CombinedOutput()
		what := "restart command done"
		if err != nil {
			what = fmt.Sprintf("restart command failed: %v: %.200s", err, out)
		}
		r.event(what)
	})
}

func (r *runner) event(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run.Events = append(r.run.Events, Event{At: time.Since(r.start).Seconds(), What: what})
}
