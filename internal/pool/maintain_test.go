package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestIdleServersAreClosedAfterTheIdleTimeoutDownToTheMinimum(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 4, MinSize: 1, IdleTimeout: 30 * time.Millisecond}}, nil)
	var leases []*testLease
	for range 3 {
		leases = append(leases, mustAcquire(t, p))
	}
	for _, l := range leases {
		l.Release()
	}
	waitStats(t, p, "idle servers past the timeout to close, down to min_pool_size", func(st Stats) bool {
		return st.ServersIdle == 1 && st.ServersClosing == 0
	})
	if d.live.Load() != 1 {
		t.Fatalf("%d servers live; want the one min_pool_size keeps", d.live.Load())
	}
}

func TestAServerPastItsLifetimeIsClosedWhenItsLeaseEndsNeverBefore(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, Lifetime: 40 * time.Millisecond}}, nil)
	l := mustAcquire(t, p)
	first := l.Server()
	time.Sleep(80 * time.Millisecond) // past its lifetime while leased
	if first.closed.Load() != 0 {
		t.Fatal("a leased server must never be closed for its lifetime")
	}
	l.Release()
	if first.closed.Load() != 1 {
		t.Fatal("past its lifetime, the server must be closed when its lease ends")
	}
	l2 := mustAcquire(t, p)
	if l2.Server() == first {
		t.Fatal("the next client must get a new server")
	}
	l2.Release()
	testutil.Eventually(t, "the idle server to reach its lifetime and close", func() bool { return d.live.Load() == 0 })
}

func TestLifetimesAreJitteredSoServersDoNotAllExpireTogether(t *testing.T) {
	now := time.Now()
	seen := map[time.Duration]bool{}
	for range 20 {
		life := newHeld(&fakeServer{}, now, 0).lifetime(time.Hour)
		if life < 48*time.Minute || life > time.Hour {
			t.Fatalf("lifetime %s outside [lifetime-20%%, lifetime]", life)
		}
		seen[life] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct lifetimes in 20 draws", len(seen))
	}
}

func TestMinPoolSizeIsKeptWarmAndRefilledAfterAnOutage(t *testing.T) {
	var down atomic.Bool
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 5, MinSize: 3, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}},
		func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error {
				if down.Load() {
					return errDial
				}
				return nil
			}
		})
	waitStats(t, p, "min_pool_size servers to open with no client", func(st Stats) bool { return st.ServersIdle == 3 })
	down.Store(true)
	for _, s := range d.all() {
		s.reusable.Store(false)
	}
	// The servers die; the pool notices when it hands them out.
	for range 3 {
		l := mustAcquire(t, p)
		l.Release()
	}
	testutil.Eventually(t, "failed refills during the outage", func() bool { return p.Stats().DialErrors >= 2 })
	down.Store(false)
	waitStats(t, p, "the pool to refill to min_pool_size after the outage", func(st Stats) bool {
		return st.ServersIdle == 3 && st.ServersConnecting == 0
	})
}

func TestAReservePoolOpensOnlyForClientsThatWaitedTheReserveTimeout(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, ReserveSize: 1, ReserveTimeout: 50 * time.Millisecond}}, nil)
	held := mustAcquire(t, p)
	results := make(chan result, 1)
	start := time.Now()
	enqueue(t, context.Background(), p, 1, results)
	r := recv(t, results, "a reserve server")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("the reserve opened after %s, before reserve_pool_timeout", waited)
	}
	if d.live.Load() != 2 {
		t.Fatalf("%d servers; want size 1 plus 1 reserve", d.live.Load())
	}
	r.lease.Release()
	held.Release()
}
