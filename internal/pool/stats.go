package pool

import "time"

// Stats is a snapshot of one pool. At rest (no clients) ServersActive,
// ClientsWaiting, ServersConnecting and ServersClosing are zero.
type Stats struct {
	Name              string
	Size              int
	Paused            bool // Pause: servers close as they come back, clients wait
	Draining          bool // Drain: the pool is retired and closes servers nobody waits for
	ClientsWaiting    int
	ServersActive     int // leased to clients
	ServersIdle       int
	ServersConnecting int
	ServersClosing    int
	// ServersToRenew are leased servers a Reconnect will close once
	// they come back.
	ServersToRenew int
	Acquires       int64 // leases granted
	Waits          int64 // acquires that had to queue
	Timeouts       int64 // waits that gave up (timeout or cancel)
	DialErrors     int64
	WaitTotal      time.Duration
	WaitMax        time.Duration
	LastDialError  error // nil once a dial started after the last failed one succeeded
	// Hosts are the pool's hosts in their configured order; nil for a pool
	// given none (one host, which Dial knows).
	Hosts []HostStats
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool[S]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Name:              p.cfg.Name,
		Size:              p.mu.set.Size,
		Paused:            p.mu.paused,
		Draining:          p.mu.draining,
		ClientsWaiting:    p.mu.waiters.Len(),
		ServersActive:     p.mu.active,
		ServersIdle:       len(p.mu.idle),
		ServersConnecting: p.mu.connecting,
		ServersClosing:    p.mu.closing,
		ServersToRenew:    p.mu.stale,
		Acquires:          p.mu.st.acquires,
		Waits:             p.mu.st.waits,
		Timeouts:          p.mu.st.timeouts,
		DialErrors:        p.mu.st.dialErrors,
		WaitTotal:         p.mu.st.waitTotal,
		WaitMax:           p.mu.st.waitMax,
		LastDialError:     p.mu.st.currentDialErr(),
		Hosts:             p.hostStatsLocked(),
	}
}

// currentDialErr is the last dial error unless a dial that started later
// succeeded (concurrent dials can end out of order).
func (c *counters) currentDialErr() error {
	if c.lastErrStart.Before(c.lastOKStart) {
		return nil
	}
	return c.lastDialErr
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Total is every server the pool holds or is opening or closing.
func (s Stats) Total() int {
	return s.ServersActive + s.ServersIdle + s.ServersConnecting + s.ServersClosing
}
