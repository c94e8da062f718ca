package app

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/park"
	"github.com/pgvalve/pgvalve/internal/session"
)

// openLot gives the relay a park.Lot, where clients idle for delay wait
// with no goroutine or read buffer of their own (client_park_delay; 0:
// never). The lot's tick looks for them every delay/2, and gives memory
// back once a wave of clients has parked (giveBack). It returns what
// closes the lot, once no client is left.
func (a *App) openLot(delay time.Duration) (closeLot func()) {
	if delay <= 0 {
		return func() {}
	}
	gb := startGiveBack()
	var buf []*session.Status
	sweep := func() {
		cutoff := time.Now().Add(-delay)
		buf = a.clients.statuses(buf[:0])
		for _, st := range buf {
			st.AskPark(cutoff)
		}
		clear(buf) // keep no ended client alive
		if lot := a.lot.Load(); lot != nil {
			gb.tick(lot.Parks(), lot.Parked(), time.Now())
		}
	}
	lot, err := park.Open(sweep, min(max(delay/2, 10*time.Millisecond), time.Second))
	if err != nil {
		a.log.Warn("idle clients will not park", "err", err)
		gb.stop()
		return func() {}
	}
	a.env.Lot = lot // before the first client: sessions start after this
	a.lot.Store(lot)
	a.giveBack.Store(gb)
	return func() {
		lot.Close()
		gb.stop()
	}
}

// Parking reports how many clients are parked now, and how many times
// clients parked since Serve started (0, 0 when they never park).
func (a *App) Parking() (now int, total uint64) {
	if lot := a.lot.Load(); lot != nil {
		return lot.Parked(), lot.Parks()
	}
	return 0, 0
}

// MemoryGivenBack reports how many times the app gave the memory its
// heap does not use back to the system after a wave of clients parked.
func (a *App) MemoryGivenBack() uint64 {
	if gb := a.giveBack.Load(); gb != nil {
		return gb.done.Load()
	}
	return 0
}

// A wave of logins leaves garbage behind (startup packets, login
// goroutines' stacks, the handshake's buffers), and the Go runtime keeps
// the memory it freed as room for a heap up to twice the live one: with
// thousands of idle clients that room was a third of pgvalve's resident
// memory. Once a wave of clients has parked (at least giveBackAfter since
// the last return, and a quarter of those parked now, so that the work is
// paid for by the wave, as a collection is by the heap's growth) and no
// client has parked for giveBackSettle, the wave is over: a collection
// then gives what it frees back to the system (debug.FreeOSMemory), on a
// goroutine of its own so that the lot's wake-ups never wait for it.
const (
	giveBackAfter  = 256
	giveBackSettle = time.Second
)

// giveBack is the lot's memory return: the tick's bookkeeping (only the
// lot's goroutine calls tick) and the goroutine that does the work.
type giveBack struct {
	kick     chan struct{}
	finished chan struct{}
	done     atomic.Uint64 // memory returns made

	last, seen uint64    // parks at the last return, and at the last tick
	changed    time.Time // when a tick last saw new parks
}

func startGiveBack() *giveBack {
	gb := &giveBack{kick: make(chan struct{}, 1), finished: make(chan struct{})}
	go func() {
		defer close(gb.finished)
		for range gb.kick {
			debug.FreeOSMemory()
			gb.done.Add(1)
		}
	}()
	return gb
}

// tick notes, at now, the parks counted so far and the clients parked
// now, and asks for a return when a wave of parks is over.
func (gb *giveBack) tick(parks uint64, parked int, now time.Time) {
	if parks != gb.seen {
		gb.seen, gb.changed = parks, now
		return
	}
	wave := parks - gb.last
	if wave < giveBackAfter || wave < uint64(parked/4) || now.Sub(gb.changed) < giveBackSettle {
		return
	}
	gb.last = parks
	select {
	case gb.kick <- struct{}{}:
	default: // one is under way
	}
}

// stop ends the goroutine once the lot's ticks are over.
func (gb *giveBack) stop() {
	close(gb.kick)
	<-gb.finished
}
