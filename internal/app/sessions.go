package app

import (
	"cmp"
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/admission"
	"github.com/pgvalve/pgvalve/internal/frontend"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/session"
)

// registry is the list of live sessions: every client from accept (logging
// in included) to its end. Adding and removing take a lock, once per
// client; the relay updates an entry's state through its atomics only.
type registry struct {
	mu struct {
		sync.Mutex
		next uint64
		m    map[uint64]listed
	}
}

// listed is a live session and how to end it (KILL, KILL_CLIENT).
type listed struct {
	st   *session.Status
	conn net.Conn
	kill context.CancelCauseFunc
}

// end ends l's context with cause and wakes the client to see it.
func (l listed) end(cause error) {
	l.kill(cause)
	frontend.Wake(l.conn, l.st)
}

func newRegistry() *registry {
	r := &registry{}
	r.mu.m = make(map[uint64]listed)
	return r
}

// statuses appends every listed client's entry to buf.
func (r *registry) statuses(buf []*session.Status) []*session.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.mu.m {
		buf = append(buf, l.st)
	}
	return buf
}

// add lists a client just accepted on conn from addr (frontend.ClientAddr)
// under a fresh id, with the context it is served under: ending it ends
// the client with cause. The returned func removes it and must be deferred.
func (r *registry) add(ctx context.Context, conn net.Conn, addr string) (*session.Status, context.Context, func()) {
	ctx, kill := context.WithCancelCause(ctx)
	r.mu.Lock()
	r.mu.next++
	st := session.NewStatus(r.mu.next, addr, time.Now())
	r.mu.m[st.ID] = listed{st: st, conn: conn, kill: kill}
	r.mu.Unlock()
	return st, ctx, func() {
		r.mu.Lock()
		delete(r.mu.m, st.ID)
		r.mu.Unlock()
		kill(nil)
	}
}

// endAll ends every listed client with cause (a hard stop). One added
// later is served under a context that has ended already: the front door
// sees it.
func (r *registry) endAll(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.mu.m {
		l.end(cause)
	}
}

// kill ends the listed clients pick chooses, with session.ErrKilled, and
// returns how many it ended.
func (r *registry) kill(pick func(*session.Status) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.mu.m {
		if pick(l.st) {
			l.end(session.ErrKilled)
			n++
		}
	}
	return n
}

// SessionInfo is a snapshot of one live session.
type SessionInfo struct {
	ID              uint64
	Remote          string // the client's address
	User, Database  string // "" while its startup packet is unread
	ApplicationName string // as given at startup
	Connected       time.Time
	State           session.State
	// ServerPID is the server's process id while State is Active, else 0.
	ServerPID uint32
	// Since is when the session entered State.
	Since time.Time
	// Hold is what it does with the server it holds (State Active).
	Hold session.Hold
	// Pin names the session state keeping it on its server across
	// transactions (advisory_lock, temp_table, ...), "" when none.
	Pin string
	// Query is the head of the last query it sent ("" if none).
	Query string
	// Served is the server time it held over the last minute in holds
	// that ended (observe.MaxHold at most each); Meter is its pool's (nil before it is
	// relayed), which tells clients of a retired pool from its
	// successor's.
	Served time.Duration
	Meter  *observe.Meter
}

// Sessions returns every live session, sorted by id (accept order).
func (a *App) Sessions() []SessionInfo {
	a.clients.mu.Lock()
	list := make([]*session.Status, 0, len(a.clients.mu.m))
	for _, l := range a.clients.mu.m {
		list = append(list, l.st)
	}
	a.clients.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	now := time.Now()
	for _, st := range list {
		login := st.Login()
		state, pid, since := st.Link()
		out = append(out, SessionInfo{ID: st.ID, Remote: st.Remote, User: login.User, Database: login.Database,
			ApplicationName: login.ApplicationName, Connected: st.Connected, State: state, ServerPID: pid, Since: since, Hold: st.Hold(), Pin: st.Pin(),
			Query: st.Query(), Served: st.Served(now), Meter: st.Meter()})
	}
	slices.SortFunc(out, func(x, y SessionInfo) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// Admission returns the admission gate's counts: logins in progress,
// clients admitted under max_client_conn, logins shed since start.
func (a *App) Admission() admission.Counts { return a.gate.Counts() }
