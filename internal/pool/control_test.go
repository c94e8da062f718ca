package pool

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestGrowingAPoolServesItsWaitingClientsAtOnce(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
	held := mustAcquire(t, p)
	ch := make(chan result, 2)
	enqueue(t, context.Background(), p, 2, ch)
	assertNothingOn(t, ch, "the pool is full")
	p.Reconfigure(Settings{Size: 3})
	for range 2 {
		r := recv(t, ch, "a waiting client to get a server dialled for the bigger pool")
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.lease.Release()
	}
	if got := d.live.Load(); got != 3 {
		t.Fatalf("%d servers live, want 3", got)
	}
	if st := p.Stats(); st.Size != 3 {
		t.Fatalf("Stats.Size = %d, want 3", st.Size)
	}
	held.Release()
}

func TestShrinkingAPoolClosesIdleServersNowAndLeasedOnesAsTheyComeBack(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 4}}, nil)
	var leases []*testLease
	for range 4 {
		leases = append(leases, mustAcquire(t, p))
	}
	idle := leases[3].Server()
	leases[3].Release()
	p.Reconfigure(Settings{Size: 2})
	if idle.closed.Load() != 1 {
		t.Fatal("an idle server over the new size must close at once")
	}
	for _, l := range leases[:3] {
		if l.Server().closed.Load() != 0 {
			t.Fatal("a leased server must never be closed by a shrink")
		}
	}
	first := leases[0].Server()
	leases[0].Release() // 2 still leased: the pool is full without it
	if first.closed.Load() != 1 {
		t.Fatal("a server given back while the pool is over its size must close")
	}
	second := leases[1].Server()
	leases[1].Release() // 1 still leased: room for this one
	if second.closed.Load() != 0 {
		t.Fatal("a server given back within the new size must be kept")
	}
	leases[2].Release()
	st := assertIdle(t, p)
	if st.ServersIdle != 2 || d.live.Load() != 2 {
		t.Fatalf("%d idle servers, %d live; want the new size 2", st.ServersIdle, d.live.Load())
	}
}

func TestAPausedPoolHandsOutNothingAndKeepsNoServerUntilResumed(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2}}, nil)
	inUse, spare := mustAcquire(t, p), mustAcquire(t, p)
	spare.Release()
	p.Pause()
	if spare.Server().closed.Load() != 1 {
		t.Fatal("pausing must close idle servers")
	}
	if inUse.Server().closed.Load() != 0 {
		t.Fatal("pausing must not close a leased server")
	}
	dials := d.dials.Load()
	ch := make(chan result, 1)
	enqueue(t, context.Background(), p, 1, ch)
	if l := p.TryAcquire(); l != nil {
		t.Fatal("TryAcquire handed out a server while paused")
	}
	inUse.Release()
	if inUse.Server().closed.Load() != 1 {
		t.Fatal("a server given back while paused must close")
	}
	st := waitStats(t, p, "every server to close", func(st Stats) bool { return st.Total() == 0 })
	if !st.Paused || st.ClientsWaiting != 1 || d.dials.Load() != dials {
		t.Fatalf("paused pool: %+v, %d dials since the pause; want a waiting client and no dial", st, d.dials.Load()-dials)
	}
	assertNothingOn(t, ch, "the pool is paused")
	p.Resume()
	r := recv(t, ch, "the waiting client to get a server after Resume")
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lease.Release()
	assertNoServerLost(t, p, d)
}

func TestAClientWaitingOnAPausedPoolGivesUpAfterItsWaitTimeout(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: 20 * time.Millisecond}}, nil)
	p.Pause()
	_, err := p.Acquire(context.Background())
	var wte *WaitTimeoutError
	if !errors.As(err, &wte) {
		t.Fatalf("Acquire on a paused pool: %v; want a wait timeout", err)
	}
	p.Resume()
	mustAcquirePatiently(t, p).Release()
}

func TestADrainingPoolServesItsClientsButKeepsNoServerNobodyWaitsFor(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, MinSize: 1}}, nil)
	l := mustAcquire(t, p)
	ch := make(chan result, 1)
	enqueue(t, context.Background(), p, 1, ch)
	p.Drain()
	srv := l.Server()
	l.Release()
	r := recv(t, ch, "the waiting client to get the server given back")
	if r.err != nil || r.lease.Server() != srv {
		t.Fatalf("waiter got %v (err %v); want the server given back, %v", r.lease, r.err, srv)
	}
	r.lease.Release()
	if srv.closed.Load() != 1 {
		t.Fatal("a draining pool must close a server nobody waits for")
	}
	l = mustAcquire(t, p) // a client of the retired route still gets served
	l.Release()
	st := waitStats(t, p, "no server left", func(st Stats) bool { return st.Total() == 0 })
	if !st.Draining || d.live.Load() != 0 {
		t.Fatalf("draining pool: %+v with %d live servers; want none, min_pool_size ignored", st, d.live.Load())
	}
}

func TestAReloadedLifetimeAppliesToServersAlreadyOpen(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
	mustAcquire(t, p).Release()
	p.Reconfigure(Settings{Size: 1, Lifetime: 10 * time.Millisecond})
	testutil.Eventually(t, "the idle server to reach its new lifetime and close", func() bool { return d.live.Load() == 0 })
}

func TestLoweringASharedLimitClosesServersUntilTheyFitRaisingItWakesWaitingPools(t *testing.T) {
	lim := NewLimit("max_db_connections app", 3)
	a, da := newTestPool(t, Config[*fakeServer]{Name: "app/alice", Limits: []*Limit{lim}, Settings: Settings{Size: 3}}, nil)
	l1, l2, l3 := mustAcquire(t, a), mustAcquire(t, a), mustAcquire(t, a)
	l3.Release()
	lim.SetMax(1)
	if l3.Server().closed.Load() != 1 || lim.Used() != 2 {
		t.Fatalf("idle server closed %d times, %d slots used; want it closed and 2 used", l3.Server().closed.Load(), lim.Used())
	}
	l1.Release()
	if l1.Server().closed.Load() != 1 {
		t.Fatal("a server given back over a lowered cap must close")
	}
	l2.Release()
	if l2.Server().closed.Load() != 0 || lim.Used() != 1 {
		t.Fatalf("within the cap the server must be kept; %d slots used", lim.Used())
	}

	b, db := newTestPool(t, Config[*fakeServer]{Name: "app/bob", Limits: []*Limit{lim}, Settings: Settings{Size: 1}}, nil)
	held := mustAcquire(t, a)
	ch := make(chan result, 1)
	enqueue(t, context.Background(), b, 1, ch)
	assertNothingOn(t, ch, "the cap is reached")
	lim.SetMax(0) // no cap
	r := recv(t, ch, "the waiting pool to dial once the cap is lifted")
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lease.Release()
	held.Release()
	assertNoServerLost(t, a, da)
	assertNoServerLost(t, b, db)
}
