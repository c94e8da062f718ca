package app

import (
	"slices"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
)

// source is the app as observe.Source: what the admin console, /metrics
// and the live page read. Every call builds its views from the pools'
// snapshots and the registry of live sessions; nothing here runs on the
// hot path.
type source struct{ a *App }

// Source returns the app's views for the console, metrics and page.
func (a *App) Source() observe.Source { return source{a} }

var stateNames = map[session.State]string{
	session.LoggingIn: "login", session.Idle: "idle", session.Waiting: "waiting", session.Active: "active",
}

func (s source) Clients() []observe.Client {
	infos := s.a.Sessions()
	now := time.Now()
	text := s.a.env.Live().QueryText
	served := poolServed(infos, now)
	out := make([]observe.Client, 0, len(infos))
	for _, in := range infos {
		c := observe.Client{ID: in.ID, Addr: in.Remote, User: in.User, Database: in.Database,
			ApplicationName: in.ApplicationName, ConnectedAt: in.Connected, State: stateNames[in.State]}
		if text {
			c.Query = in.Query
		}
		if total := served[in.Meter]; total > 0 {
			c.ServerShare = float64(in.Served+holding(in, now)) / float64(total)
		}
		switch in.State {
		case session.Waiting:
			c.WaitingSince = in.Since
		case session.Active:
			c.ServerPID, c.HeldSince, c.HoldState = int32(in.ServerPID), in.Since, in.Hold.String()
			c.Pinned = in.Pin
		}
		out = append(out, c)
	}
	return out
}

// holding is the part of the last minute a client has held the server it
// holds now.
func holding(in SessionInfo, now time.Time) time.Duration {
	if in.State != session.Active {
		return 0
	}
	return min(now.Sub(in.Since), observe.MaxHold)
}

// poolServed is each pool's server time over the last minute: the holds
// that ended, which its meter counts, and the ones going on.
func poolServed(infos []SessionInfo, now time.Time) map[*observe.Meter]time.Duration {
	out := make(map[*observe.Meter]time.Duration)
	for _, in := range infos {
		if in.Meter == nil {
			continue
		}
		if _, seen := out[in.Meter]; !seen {
			out[in.Meter] = time.Duration(in.Meter.Served.LastMinute(now))
		}
		out[in.Meter] += holding(in, now)
	}
	return out
}

func (s source) Pools() []observe.Pool {
	clients := s.Clients()
	now := time.Now()
	stats := s.a.Stats()
	out := make([]observe.Pool, 0, len(stats))
	for _, st := range stats {
		p := observe.Pool{Database: st.Database, User: st.User, Mode: string(st.Mode), Size: st.Size,
			Paused: st.Paused, Draining: st.Draining, ClientsWaiting: st.ClientsWaiting,
			ServersActive: st.ServersActive, ServersIdle: st.ServersIdle, ServersLogin: st.ServersConnecting,
			ServersClosing: st.ServersClosing, Listeners: st.Listeners, Pinned: st.Pinned, Acquires: st.Acquires, Waits: st.Waits,
			WaitTimeouts: st.Timeouts, DialErrors: st.DialErrors, WaitTime: st.WaitTotal}
		p.Latency = &st.Meter.Latency
		for k := range observe.NumKinds {
			p.LatencyNow[k], p.LatencyTotal[k] = st.Meter.Latency[k].LastMinute(now), st.Meter.Latency[k].Total()
		}
		p.Xacts, p.XactTime = int64(p.LatencyTotal[observe.Xact].Count), p.LatencyTotal[observe.Xact].Sum
		p.Queries, p.QueryTime = int64(p.LatencyTotal[observe.Query].Count), p.LatencyTotal[observe.Query].Sum
		p.BytesReceived, p.ReceivedLastMinute = st.Meter.Received.Total(), st.Meter.Received.LastMinute(now)
		p.BytesSent, p.SentLastMinute = st.Meter.Sent.Total(), st.Meter.Sent.LastMinute(now)
		for r := range st.Meter.Closed {
			if n := st.Meter.Closed[r].Load(); n > 0 {
				if p.ServersClosed == nil {
					p.ServersClosed = make(map[string]int64)
				}
				p.ServersClosed[reason.Reason(r).String()] = n
			}
		}
		if st.LastDialError != nil {
			p.LastDialError = st.LastDialError.Error()
		}
		if !st.Draining { // a retired pool's clients show under the pool that replaced it
			for _, c := range clients {
				if c.Database != st.Database || c.User != st.User {
					continue
				}
				switch c.State {
				case "active", "idle":
					p.ClientsActive++
				case "login":
					p.ClientsLogin++
				case "waiting":
					p.MaxWait = max(p.MaxWait, now.Sub(c.WaitingSince))
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// Servers lists the servers clients hold now; parked servers are counted
// in Pools but not listed, as the pool does not name them.
func (s source) Servers() []observe.Server {
	var out []observe.Server
	for _, c := range s.Clients() {
		if c.ServerPID != 0 {
			v := observe.Server{PID: c.ServerPID, Database: c.Database, User: c.User,
				State: "active", RequestAt: c.HeldSince, ClientID: c.ID}
			if info, ok := s.a.server(c.Database, c.User, uint32(c.ServerPID)); ok {
				v.Addr, v.ConnectedAt, v.TLS = info.addr, info.created, info.tls
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(x, y observe.Server) int { return int(x.PID) - int(y.PID) })
	return out
}

// ClientErrors counts the errors pgvalve itself told clients (front door,
// relay and console logins), by SQLSTATE.
func (s source) ClientErrors() map[string]int64 { return s.a.env.Errors.Counts() }

// Parking counts the clients parked now and the parks so far.
func (s source) Parking() observe.Parking {
	now, total := s.a.Parking()
	return observe.Parking{Parked: now, Parks: total}
}

func (s source) Diagnosis() []string {
	return observe.Diagnose(s.Pools(), s.Clients(), time.Now())
}
