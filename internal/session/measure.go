package session

import (
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// measureLocked counts requests answered in the pool's meter once the last
// pending one has its ReadyForQuery (status): pipelined requests count as
// one, from the first byte sent to the last answer. A transaction ends at
// an 'I' after a 'T' or 'E'; a request that starts and ends at 'I' is an
// implicit transaction, as PgBouncer counts it. The caller holds s.mu.
func (s *Session) measureLocked(status byte) {
	m := s.route.Meter
	if m == nil || s.mu.st.pending != 0 || s.mu.busySince.IsZero() {
		return
	}
	now := time.Now()
	m.Latency[observe.Query].ObserveAt(now.Sub(s.mu.busySince), now)
	switch {
	case status != 'I':
		if s.mu.xactSince.IsZero() {
			s.mu.xactSince = s.mu.busySince
		}
	case !s.mu.xactSince.IsZero():
		m.Latency[observe.Xact].ObserveAt(now.Sub(s.mu.xactSince), now)
		s.mu.xactSince = time.Time{}
	default:
		m.Latency[observe.Xact].ObserveAt(now.Sub(s.mu.busySince), now)
	}
	s.mu.busySince = time.Time{}
}
