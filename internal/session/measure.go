package session

import (
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// measureLocked counts requests answered in the pool's meter once the last
// pending one has its ReadyForQuery (status): pipelined requests count as
// one, from the first byte sent to the last answer. A transaction ends at
// an 'I' after a 'T' or 'E'; a request that starts and ends at 'I' is an
// implicit transaction, as PgBouncer counts it. It returns how long the
// requests took when that is over log_slow_query (else 0), for the caller
// to log once it has let go of s.mu.
func (s *Session) measureLocked(status byte) (slow time.Duration) {
	m := s.route.Meter
	if m == nil || s.mu.st.pending != 0 || s.mu.busySince.IsZero() {
		return 0
	}
	now := time.Now()
	took := now.Sub(s.mu.busySince)
	m.Latency[observe.Query].ObserveAt(took, now)
	if limit := s.env.Live().SlowQuery; limit > 0 && took >= limit {
		slow = took
	}
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
	return slow
}

// logSlow logs a request answered after longer than log_slow_query: how
// long, the pool, the client's application_name and, with log_query_text,
// the head of its last query.
func (s *Session) logSlow(took time.Duration) {
	attrs := []any{"duration", took, "pool", s.route.Pool.Name(), "application_name", s.status.Login().ApplicationName}
	if s.env.Live().QueryText {
		attrs = append(attrs, "query", s.status.Query())
	}
	s.log().Warn("slow query", attrs...)
}
