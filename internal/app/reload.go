package app

import (
	"maps"
	"slices"
	"strings"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/session"
)

// Reload puts a new, validated configuration in force and returns what
// changed, each change logged on its own line. listen and auth need a
// restart: their running values stay. Everything else applies at once:
//
//   - pool sizes, pool timeouts and the shared caps reach the running pools
//     (pool.Reconfigure, Limit.SetMax);
//   - session settings reach every session, connected or not (session.Live);
//   - [peers] reach the next cancel request (peer_id needs a restart);
//   - a pool whose route changed (upstream, server database or user,
//     pool_mode) or went away is retired: its clients keep it, with the
//     upstream and mode they connected with, until they leave; its idle
//     servers close and new clients get the new route, or 3D000 if there is
//     none, as a fresh start would do. No client is disconnected.
//
// log_level belongs to the logger's owner, which applies it.
func (a *App) Reload(next config.Config) []config.Change {
	type tune struct {
		pool *session.ServerPool
		set  pool.Settings
	}
	var tunes []tune
	var retired []*entry
	a.mu.Lock()
	cfg, changes := config.Reloaded(a.mu.cfg, next)
	a.mu.cfg = cfg
	for key, e := range a.mu.pools {
		route, ok := cfg.PoolFor(key.db)
		if ok && sameRoute(e, cfg, route) {
			tunes = append(tunes, tune{e.pool, poolSettings(cfg, route)})
			e.route.Pinned.SetMax(maxPinned(cfg, route))
			continue
		}
		delete(a.mu.pools, key)
		a.mu.retired[e] = struct{}{}
		e.retired.Store(true)
		retired = append(retired, e)
	}
	dbLimits, userLimits := maps.Clone(a.mu.dbLimits), maps.Clone(a.mu.userLimits)
	a.mu.Unlock()

	a.env.SetLive(liveSettings(cfg))
	a.maxClients.Store(int64(cfg.MaxClientConn))
	a.maxLogins.Store(int64(cfg.MaxLoginConn))
	a.gate.SetLimits(cfg.MaxLoginConn, cfg.MaxLoginConnPerAddr)
	a.env.Cancels.SetPeers(cancelPeers(cfg))
	if err := a.loadFiles(cfg); err != nil {
		a.log.Error("reload: files not loaded; auth_file, auth_hba_file and TLS stay as they were", "err", err)
	}
	for _, t := range tunes {
		t.pool.Reconfigure(t.set)
	}
	for _, l := range dbLimits {
		l.SetMax(cfg.MaxDBConnections)
	}
	for user, l := range userLimits {
		l.SetMax(cfg.UserMaxConnections(user))
	}
	a.logChanges(changes)
	for _, e := range retired {
		a.log.Info("route changed: pool retired; its clients keep it until they leave, new clients get the new route",
			"pool", e.key.String(), "clients", e.clients.Load())
		e.pool.Drain()
		if e.clients.Load() == 0 {
			a.closeRetired(e)
		}
	}
	return changes
}

// sameRoute reports whether e's pool still serves route under cfg: same
// servers, same login, same pool mode, same choice of host. A size or
// timeout may differ.
func sameRoute(e *entry, cfg config.Config, route config.Database) bool {
	target, err := cfg.Target(route)
	if err != nil {
		return false
	}
	dial := dialConfig(cfg, target, e.key.db, e.key.user)
	return cfg.UserPoolMode(dial.User, route) == e.route.Mode && route.SessionState == e.route.State &&
		sameDial(dial, e.dial) && sameTarget(target, e.target)
}

// sameTarget reports whether two targets name the same hosts, weights and
// choice.
func sameTarget(a, b config.Upstream) bool {
	return slices.Equal(a.Hosts, b.Hosts) && a.TargetSessionAttrs == b.TargetSessionAttrs && a.LoadBalanceHosts == b.LoadBalanceHosts
}

func sameDial(a, b backend.Config) bool {
	return a.Host == b.Host && a.Port == b.Port && a.User == b.User && a.Password == b.Password &&
		a.Database == b.Database && maps.Equal(a.Params, b.Params) && a.MaxMessageSize == b.MaxMessageSize
}

func (a *App) logChanges(changes []config.Change) {
	if len(changes) == 0 {
		a.log.Info("config reloaded: nothing changed")
		return
	}
	for _, c := range changes {
		switch {
		case c.Restart:
			a.log.Warn("config: "+c.Key+" needs a restart to change; the running value stays", "running", c.Old, "file", c.New)
		case strings.Count(c.Key, ".") == 1 && c.Old == "":
			a.log.Info("config: route added", "database", strings.TrimPrefix(c.Key, "databases."), "upstream", c.New)
		case strings.Count(c.Key, ".") == 1 && c.New == "":
			a.log.Info("config: route removed; its clients stay until they leave", "database", strings.TrimPrefix(c.Key, "databases."))
		default:
			a.log.Info("config: " + c.String())
		}
	}
	a.log.Info("config reloaded", "changes", len(changes))
}

// leave counts a session of e out; the last one out of a retired pool
// closes it.
func (a *App) leave(e *entry) {
	if e.clients.Add(-1) == 0 && e.retired.Load() {
		a.closeRetired(e)
	}
}

// closeRetired closes a retired pool nobody uses; it may run twice (the
// last client leaving races the reload that retired it), which Close
// allows.
func (a *App) closeRetired(e *entry) {
	e.close()
	a.mu.Lock()
	delete(a.mu.retired, e)
	a.mu.Unlock()
	a.log.Debug("retired pool closed", "pool", e.key.String())
}
