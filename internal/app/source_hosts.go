package app

import (
	"errors"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/observe"
)

func (s source) Hosts() []observe.Host {
	var out []observe.Host
	for _, e := range s.a.entries(func() {}) {
		if !e.retired.Load() {
			out = append(out, hostRows(e)...)
		}
	}
	return out
}

// hostRows are SHOW HOSTS' rows for e's pool: its one host from the pool's
// own counts, or each of several with what its health checks found.
func hostRows(e *entry) []observe.Host {
	st := e.pool.Stats()
	row := func(addr config.Address) observe.Host {
		return observe.Host{Database: e.key.db, User: e.key.user, Host: addr.String(), State: "up", Weight: max(addr.Weight, 1)}
	}
	if st.Hosts == nil {
		h := row(e.target.Hosts[0])
		h.Outstanding, h.Idle, h.Connecting, h.Chosen = st.ServersActive, st.ServersIdle, st.ServersConnecting, st.Acquires
		if st.LastDialError != nil {
			h.State, h.LastError = "unreachable", st.LastDialError.Error()
		}
		return []observe.Host{h}
	}
	var checks []hostHealth
	if e.watch != nil {
		checks = e.watch.snapshot()
	}
	out := make([]observe.Host, len(st.Hosts))
	for i, hs := range st.Hosts {
		h := row(e.target.Hosts[i])
		h.Outstanding, h.Idle, h.Connecting, h.Chosen = hs.Outstanding, hs.Idle, hs.Connecting, hs.Chosen
		switch {
		case !hs.Up && i < len(checks) && checks[i].lagging():
			h.State = "lagging"
		case !hs.Up:
			h.State = "down"
		case hs.Unreachable:
			h.State = "unreachable"
		}
		if i < len(checks) && checks[i].checked {
			c := checks[i]
			if _, wrongRole := errors.AsType[*backend.RoleError](c.err); c.err == nil || wrongRole {
				h.Role = c.role.String()
			}
			if c.err != nil {
				h.LastError = c.err.Error()
			}
			h.Lag, h.LagKnown = c.lag, c.lag >= 0
		}
		out[i] = h
	}
	return out
}
