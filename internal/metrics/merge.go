package metrics

import (
	"maps"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// pool is one database and user's numbers, its histograms read once.
type pool struct {
	observe.Pool
	latency [observe.NumKinds]*observe.Native
}

// merge makes one pool of each database and user. A reload that changes
// a pool leaves the old one draining beside the new, and Prometheus
// refuses two series with the same labels, so their numbers are added:
// gauges count both pools' clients and servers, settings are the new
// pool's. When the draining pool goes, its counts leave the totals, which
// Prometheus's rate() reads as a counter reset.
func merge(ps []observe.Pool) []pool {
	out := make([]pool, 0, len(ps))
	at := map[[2]string]int{}
	for _, p := range ps {
		k := [2]string{p.Database, p.User}
		i, dup := at[k]
		if !dup {
			at[k] = len(out)
			out = append(out, pool{Pool: p})
			out[len(out)-1].ServersClosed = maps.Clone(p.ServersClosed) // add writes to it
			out[len(out)-1].readLatency(&p)
			continue
		}
		out[i].add(&p)
	}
	return out
}

func (m *pool) readLatency(p *observe.Pool) {
	if p.Latency == nil {
		return
	}
	for k := range m.latency {
		n := p.Latency[k].Native()
		m.latency[k] = &n
	}
}

// add adds p, another pool of the same database and user, to m.
func (m *pool) add(p *observe.Pool) {
	if m.Draining && !p.Draining { // settings are the live pool's
		m.Mode, m.Size, m.ReserveSize, m.Paused, m.Draining = p.Mode, p.Size, p.ReserveSize, p.Paused, false
		m.LastDialError = p.LastDialError
	}
	m.ClientsActive += p.ClientsActive
	m.ClientsWaiting += p.ClientsWaiting
	m.ClientsLogin += p.ClientsLogin
	m.ServersActive += p.ServersActive
	m.ServersIdle += p.ServersIdle
	m.ServersUsed += p.ServersUsed
	m.ServersLogin += p.ServersLogin
	m.ServersClosing += p.ServersClosing
	m.Listeners += p.Listeners
	m.Pinned += p.Pinned
	m.MaxWait = max(m.MaxWait, p.MaxWait)
	m.Acquires += p.Acquires
	m.Waits += p.Waits
	m.WaitTimeouts += p.WaitTimeouts
	m.DialErrors += p.DialErrors
	m.Xacts += p.Xacts
	m.Queries += p.Queries
	m.BytesReceived += p.BytesReceived
	m.BytesSent += p.BytesSent
	m.WaitTime += p.WaitTime
	m.QueryTime += p.QueryTime
	m.XactTime += p.XactTime
	if m.ServersClosed == nil && len(p.ServersClosed) > 0 {
		m.ServersClosed = map[string]int64{}
	}
	for r, n := range p.ServersClosed {
		m.ServersClosed[r] += n
	}
	if p.Latency == nil {
		return
	}
	for k := range m.latency {
		n := p.Latency[k].Native()
		if m.latency[k] == nil {
			m.latency[k] = &n
			continue
		}
		m.latency[k].Add(&n)
	}
}
