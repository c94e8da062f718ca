package app

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
)

// HealthCheckAppName is the application_name of a host's health check.
const HealthCheckAppName = "pgvalve health check"

// maxCheckBackoff bounds how far apart a failing host's checks grow: 2^3
// health_check_periods.
const maxCheckBackoff = 3

// hostWatch checks the hosts of a pool with several, every
// health_check_period: a login, the role, SELECT 1. A host that fails (or
// no longer has the role the route asks for) leaves the pool's choice, and
// comes back once it passes; a failing host is checked less often. One
// goroutine per pool, ended by stop.
type hostWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	hosts  []hostHealth // what the checks found, per host
}

// hostHealth is one host as its checks found it.
type hostHealth struct {
	checkFound           // the last check's (lag -1 before the first)
	up         bool      // in the pool's choice (a host not checked yet is)
	fails      int       // checks failed in a row
	next       time.Time // when it is checked next
	checked    bool
}

// watchHosts starts checking e's hosts.
func (a *App) watchHosts(e *entry) *hostWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &hostWatch{cancel: cancel, done: make(chan struct{}), hosts: make([]hostHealth, len(e.target.Hosts))}
	for i := range w.hosts {
		w.hosts[i].up, w.hosts[i].lag = true, -1 // up until a check says otherwise
	}
	go a.runWatch(ctx, e, w)
	return w
}

// stop ends the checks and waits for the one running.
func (w *hostWatch) stop() {
	w.cancel()
	<-w.done
}

func (a *App) runWatch(ctx context.Context, e *entry, w *hostWatch) {
	defer close(w.done)
	for {
		lim := a.checkLimits()
		wait := time.Second // checks off: look again for a reload that turns them on
		if lim.period > 0 {
			a.checkDue(ctx, e, w, lim)
			wait = lim.period
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// checkLimits are the settings health checks follow, read afresh before
// each round so that a reload applies them.
type checkLimits struct {
	period  time.Duration // health_check_period
	timeout time.Duration // one check's: server_connect_timeout, as a pool's own login
	maxLag  time.Duration // max_replica_lag; 0 none
}

func (a *App) checkLimits() checkLimits {
	a.mu.Lock()
	defer a.mu.Unlock()
	return checkLimits{a.mu.cfg.HealthCheckPeriod, a.mu.cfg.ServerConnectTimeout, a.mu.cfg.MaxReplicaLag}
}

// checkDue checks every host whose turn it is, at the same time, so that
// a host slow to answer holds up no other's check.
func (a *App) checkDue(ctx context.Context, e *entry, w *hostWatch, lim checkLimits) {
	var wg sync.WaitGroup
	for i := range e.target.Hosts {
		w.mu.Lock()
		due := !time.Now().Before(w.hosts[i].next)
		w.mu.Unlock()
		if !due {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, lim.timeout)
			found := a.checkHost(cctx, e, i, lim.maxLag)
			cancel()
			if ctx.Err() == nil { // stopping: a check cut short says nothing of the host
				a.checked(e, w, i, found, lim.period)
			}
		})
	}
	wg.Wait()
}

// checkFound is what one check found of a host.
type checkFound struct {
	role backend.Role
	lag  time.Duration // a standby's replay lag; -1 unknown (or not a standby)
	err  error         // the check's failure
}

// lagging reports whether the check found a standby lagging more than
// max_replica_lag.
func (f checkFound) lagging() bool {
	_, ok := errors.AsType[*LagError](f.err)
	return ok
}

// checkHost logs in to e's host-th host as the pool's servers do, learns
// its role and runs a query: a standby's replay lag, SELECT 1 on others.
// A standby lagging more than maxLag (when set) fails with a *LagError.
func (a *App) checkHost(ctx context.Context, e *entry, host int, maxLag time.Duration) checkFound {
	c, err := a.loginTo(ctx, e, host, HealthCheckAppName, true)
	if wrong, ok := errors.AsType[*backend.RoleError](err); ok {
		return checkFound{role: wrong.Role, lag: -1, err: err}
	}
	if err != nil {
		return checkFound{lag: -1, err: err}
	}
	defer c.Close()
	found := checkFound{role: c.Role(), lag: -1}
	if !found.role.Standby {
		found.err = c.Exec(ctx, "SELECT 1")
		return found
	}
	if found.lag, found.err = replayLag(ctx, c); found.err == nil && maxLag > 0 && found.lag > maxLag {
		found.err = &LagError{Lag: found.lag, Max: maxLag}
	}
	return found
}

// checked applies one check's outcome to the pool, and logs a change. The
// last host in the choice stays in it whatever its check says: clients
// then wait for it and get its own error when their wait ends, rather
// than an empty choice.
func (a *App) checked(e *entry, w *hostWatch, i int, found checkFound, period time.Duration) {
	role, err, lagging := found.role, found.err, found.lagging()
	w.mu.Lock()
	h := &w.hosts[i]
	was, wasChecked, wasLagging := h.up, h.checked, h.lagging()
	h.checkFound, h.checked = found, true
	up := err == nil || (h.up && w.lastUpLocked(i))
	if err == nil || lagging { // a lagging host is up: it is looked at every period
		h.fails = 0
	} else {
		h.fails++
	}
	h.up = up
	h.next = time.Now().Add(period << min(h.fails, maxCheckBackoff))
	fails := h.fails
	w.mu.Unlock()

	e.pool.SetHostUp(i, up)
	if err == nil && e.target.TargetSessionAttrs == "prefer-standby" {
		e.pool.SetHostTier(i, roleTier(role))
	}
	addr := e.target.Hosts[i].String()
	switch {
	case err != nil && up:
		if fails == 1 || (lagging && !wasLagging) {
			a.log.Warn("host failed its health check; kept as the last host of the pool", "pool", e.key.String(), "host", addr, "err", err)
		}
	case lagging && was:
		a.log.Warn("host lagging", "pool", e.key.String(), "host", addr, "err", err)
	case err != nil && was:
		a.log.Warn("host down", "pool", e.key.String(), "host", addr, "err", err)
	case err == nil && (!was || !wasChecked):
		a.log.Info("host up", "pool", e.key.String(), "host", addr, "role", role.String())
	}
}

// lastUpLocked reports whether host i is the only one of w in the choice.
func (w *hostWatch) lastUpLocked(i int) bool {
	for j := range w.hosts {
		if j != i && w.hosts[j].up {
			return false
		}
	}
	return true
}

// snapshot is what the checks found of each host.
func (w *hostWatch) snapshot() []hostHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.hosts)
}
