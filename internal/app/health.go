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
	up      bool // in the pool's choice (a host not checked yet is)
	role    backend.Role
	err     error     // the last check's failure
	fails   int       // checks failed in a row
	next    time.Time // when it is checked next
	checked bool
}

// watchHosts starts checking e's hosts.
func (a *App) watchHosts(e *entry) *hostWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &hostWatch{cancel: cancel, done: make(chan struct{}), hosts: make([]hostHealth, len(e.target.Hosts))}
	for i := range w.hosts {
		w.hosts[i].up = true
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
		period, timeout := a.checkTimes()
		wait := time.Second // checks off: look again for a reload that turns them on
		if period > 0 {
			a.checkDue(ctx, e, w, period, timeout)
			wait = period
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

// checkTimes are health_check_period and how long one check may take:
// server_connect_timeout, as a pool's own login.
func (a *App) checkTimes() (period, timeout time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.cfg.HealthCheckPeriod, a.mu.cfg.ServerConnectTimeout
}

// checkDue checks every host whose turn it is, at the same time, so that
// a host slow to answer holds up no other's check.
func (a *App) checkDue(ctx context.Context, e *entry, w *hostWatch, period, timeout time.Duration) {
	var wg sync.WaitGroup
	for i := range e.target.Hosts {
		w.mu.Lock()
		due := !time.Now().Before(w.hosts[i].next)
		w.mu.Unlock()
		if !due {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			role, err := a.checkHost(cctx, e, i)
			cancel()
			if ctx.Err() == nil { // stopping: a check cut short says nothing of the host
				a.checked(e, w, i, role, err, period)
			}
		})
	}
	wg.Wait()
}

// checkHost logs in to e's host-th host as the pool's servers do, learns
// its role and runs SELECT 1.
func (a *App) checkHost(ctx context.Context, e *entry, host int) (backend.Role, error) {
	c, err := a.loginTo(ctx, e, host, HealthCheckAppName, true)
	if wrong, ok := errors.AsType[*backend.RoleError](err); ok {
		return wrong.Role, err
	}
	if err != nil {
		return backend.Role{}, err
	}
	defer c.Close()
	if err := c.Exec(ctx, "SELECT 1"); err != nil {
		return backend.Role{}, err
	}
	return c.Role(), nil
}

// checked applies one check's outcome to the pool, and logs a change. The
// last host in the choice stays in it whatever its check says: clients
// then wait for it and get its own error when their wait ends, rather
// than an empty choice.
func (a *App) checked(e *entry, w *hostWatch, i int, role backend.Role, err error, period time.Duration) {
	w.mu.Lock()
	h := &w.hosts[i]
	was, wasChecked := h.up, h.checked
	h.role, h.err, h.checked = role, err, true
	up := err == nil || (h.up && w.lastUpLocked(i))
	if err == nil {
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
		if fails == 1 {
			a.log.Warn("host failed its health check; kept as the last host of the pool", "pool", e.key.String(), "host", addr, "err", err)
		}
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
