package app

import (
	"time"

	"github.com/pgvalve/pgvalve/internal/park"
	"github.com/pgvalve/pgvalve/internal/session"
)

// openLot gives the relay a park.Lot, where clients idle for delay wait
// with no goroutine or read buffer of their own (client_park_delay; 0:
// never). The lot's tick looks for them every delay/2. It returns what
// closes the lot, once no client is left.
func (a *App) openLot(delay time.Duration) (closeLot func()) {
	if delay <= 0 {
		return func() {}
	}
	var buf []*session.Status
	sweep := func() {
		cutoff := time.Now().Add(-delay)
		buf = a.clients.statuses(buf[:0])
		for _, st := range buf {
			st.AskPark(cutoff)
		}
		clear(buf) // keep no ended client alive
	}
	lot, err := park.Open(sweep, min(max(delay/2, 10*time.Millisecond), time.Second))
	if err != nil {
		a.log.Warn("idle clients will not park", "err", err)
		return func() {}
	}
	a.env.Lot = lot // before the first client: sessions start after this
	a.lot.Store(lot)
	return lot.Close
}

// Parking reports how many clients are parked now, and how many times
// clients parked since Serve started (0, 0 when they never park).
func (a *App) Parking() (now int, total uint64) {
	if lot := a.lot.Load(); lot != nil {
		return lot.Parked(), lot.Parks()
	}
	return 0, 0
}
