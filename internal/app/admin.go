package app

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/pgvalve/pgvalve/internal/console"
	"github.com/pgvalve/pgvalve/internal/session"
)

// Pause stops giving servers to clients, as PgBouncer's PAUSE (SIGUSR1):
// clients stay connected, and those that need a server wait, each up to
// query_wait_timeout; idle servers close now and the rest as their
// clients give them back (at the end of a transaction, or at disconnect in
// session pooling). Pools created while paused start paused.
func (a *App) Pause() {
	entries := a.entries(func() { a.mu.paused = true })
	a.log.Info("PAUSE: no server is given to clients until RESUME; servers close as they are given back", "pools", len(entries))
	for _, e := range entries {
		a.pausePool(e)
	}
}

// Resume ends a Pause (SIGUSR2): waiting clients get servers, but for
// databases paused on their own (PauseDB, Kill).
func (a *App) Resume() {
	var held map[string]bool
	entries := a.entries(func() { a.mu.paused = false; held = maps.Clone(a.mu.pausedDBs) })
	for _, e := range entries {
		if !held[e.key.db] {
			e.pool.Resume()
		}
	}
	a.log.Info("RESUME: servers are given to clients again", "pools", len(entries), "databases_still_paused", len(held))
}

func (a *App) pausePool(e *entry) {
	e.pool.Pause()
	st := e.pool.Stats()
	a.log.Info("pool paused", "pool", st.Name, "servers_in_use", st.ServersActive, "clients_waiting", st.ClientsWaiting)
}

// PauseDB is Pause for one database's pools (PAUSE db).
func (a *App) PauseDB(db string) error {
	if err := a.known(db); err != nil {
		return err
	}
	entries := a.entries(func() { a.pauseDBLocked(db) })
	a.log.Info("PAUSE of one database", "database", db)
	for _, e := range entries {
		if e.key.db == db {
			a.pausePool(e)
		}
	}
	return nil
}

func (a *App) pauseDBLocked(db string) {
	if a.mu.pausedDBs == nil {
		a.mu.pausedDBs = make(map[string]bool)
	}
	a.mu.pausedDBs[db] = true
}

// ResumeDB ends a PauseDB or Kill of db; a Pause of every database still
// holds it.
func (a *App) ResumeDB(db string) error {
	var was, all bool
	entries := a.entries(func() {
		was, all = a.mu.pausedDBs[db], a.mu.paused
		delete(a.mu.pausedDBs, db)
	})
	if !was {
		return fmt.Errorf("database %s is not paused", db)
	}
	a.log.Info("RESUME of one database", "database", db, "still_paused_by_PAUSE", all)
	for _, e := range entries {
		if e.key.db == db && !all {
			e.pool.Resume()
		}
	}
	return nil
}

// known says whether clients can reach db ("no such database" if not).
func (a *App) known(db string) error {
	if _, ok := a.config().PoolFor(db); !ok {
		return fmt.Errorf("no such database: %s", db)
	}
	return nil
}

// matching returns the pools of db ("" for every database).
func (a *App) matching(db string) []*entry {
	var out []*entry
	for _, e := range a.entries(func() {}) {
		if db == "" || e.key.db == db {
			out = append(out, e)
		}
	}
	return out
}

// Reconnect renews db's servers ("" for every database), as PgBouncer's
// RECONNECT: each closes once its client gives it back.
func (a *App) Reconnect(db string) error {
	if db != "" {
		if err := a.known(db); err != nil {
			return err
		}
	}
	for _, e := range a.matching(db) {
		e.pool.Reconnect()
	}
	a.log.Info("RECONNECT: servers close as they are given back", "database", db)
	return nil
}

// WaitClose returns once no server of db ("" for every database) is
// waiting to be closed by Reconnect, or ctx ends.
func (a *App) WaitClose(ctx context.Context, db string) error {
	if db != "" {
		if err := a.known(db); err != nil {
			return err
		}
	}
	return a.until(ctx, db, func(e *entry) bool { return e.pool.Stats().ServersToRenew == 0 })
}

// quiet waits until every server of db's pools is back (PAUSE's wait).
func (a *App) quiet(ctx context.Context, db string) error {
	return a.until(ctx, db, func(e *entry) bool { return e.pool.Stats().ServersActive == 0 })
}

// until polls db's pools until done holds for all of them, or ctx ends.
func (a *App) until(ctx context.Context, db string, done func(*entry) bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		all := true
		for _, e := range a.matching(db) {
			all = all && done(e)
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Kill ends db's clients at once ("" for every database) and pauses db
// (or every database), as PgBouncer's KILL: their servers are closed
// (a request running on one is cancelled first), and new clients wait
// until RESUME.
func (a *App) Kill(db string) error {
	if db != "" {
		if err := a.known(db); err != nil {
			return err
		}
	}
	entries := a.entries(func() {
		if db == "" {
			a.mu.paused = true
		} else {
			a.pauseDBLocked(db)
		}
	})
	for _, e := range entries {
		if db == "" || e.key.db == db {
			a.pausePool(e)
		}
	}
	n := a.clients.kill(func(st *session.Status) bool {
		l := st.Login()
		return l.Database != "" && !console.IsConsole(l.Database) && (db == "" || l.Database == db)
	})
	a.log.Info("KILL: clients ended, database paused until RESUME", "database", db, "clients", n)
	return nil
}

// KillClient ends one client, by its id in SHOW CLIENTS.
func (a *App) KillClient(id uint64) error {
	if a.clients.kill(func(st *session.Status) bool { return st.ID == id }) == 0 {
		return fmt.Errorf("no such client: %d", id)
	}
	a.log.Info("KILL_CLIENT: client ended", "id", id)
	return nil
}
