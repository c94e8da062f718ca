package pool

import (
	"context"
	"sync"
	"testing"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// RECONNECT closes an idle server at once and a leased one only when its
// client gives it back, counting it as to be renewed until then; the next
// client gets a freshly dialled server.
func TestReconnectRenewsIdleServersNowAndLeasedOnesOnRelease(t *testing.T) {
	var mu sync.Mutex
	closed := map[int64]reason.Reason{}
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2},
		Closed: func(s *fakeServer, why reason.Reason) { mu.Lock(); closed[s.id] = why; mu.Unlock() }}, nil)
	leased, parked := mustAcquire(t, p), mustAcquire(t, p)
	parked.Release()

	p.Reconnect()
	if st := p.Stats(); st.ServersIdle != 0 || st.ServersActive != 1 || st.ServersToRenew != 1 {
		t.Fatalf("after RECONNECT: %+v, want the idle server closed and the leased one to renew", st)
	}
	mu.Lock()
	if closed[parked.Server().id] != reason.Reconnect || len(closed) != 1 {
		t.Errorf("closed %v, want only the idle server, for reconnect", closed)
	}
	mu.Unlock()

	leased.Release()
	st := waitStats(t, p, "the leased server closed", func(st Stats) bool { return st.ServersClosing == 0 && st.ServersIdle == 0 })
	if st.ServersToRenew != 0 {
		t.Errorf("to renew after the release: %d, want 0", st.ServersToRenew)
	}
	mu.Lock()
	if closed[leased.Server().id] != reason.Reconnect {
		t.Errorf("the leased server closed for %v, want reconnect", closed[leased.Server().id])
	}
	mu.Unlock()

	fresh := mustAcquire(t, p)
	if fresh.Server().id != 3 || d.dials.Load() != 3 {
		t.Errorf("after RECONNECT the client got server %d after %d dials, want a third, fresh one", fresh.Server().id, d.dials.Load())
	}
	fresh.Release()
	if st := p.Stats(); st.ServersIdle != 1 {
		t.Errorf("a server born after RECONNECT is kept: %+v", st)
	}
}

// A dial error is the pool's last only until a later dial succeeds: a
// pool that recovered does not go on reporting the outage it rode out.
func TestADialErrorIsForgottenOnceALaterDialSucceeds(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, func(d *fakeDialer) {
		d.hook = func(_ context.Context, n int64) error {
			if n == 1 {
				return errDial
			}
			return nil
		}
	})
	l := mustAcquirePatiently(t, p)
	defer l.Release()
	if st := p.Stats(); st.DialErrors != 1 || st.LastDialError != nil {
		t.Errorf("after a failed dial and a good one: %d errors, last %v; want 1 and none now", st.DialErrors, st.LastDialError)
	}
}
