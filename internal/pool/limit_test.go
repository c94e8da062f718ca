package pool

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestASharedLimitCapsServersAcrossPools(t *testing.T) {
	lim := NewLimit("max_db_connections app", 3)
	a, da := newTestPool(t, Config[*fakeServer]{Name: "app/alice", Limits: []*Limit{lim}, Settings: Settings{Size: 3}}, nil)
	b, db := newTestPool(t, Config[*fakeServer]{Name: "app/bob", Limits: []*Limit{lim}, Settings: Settings{Size: 3}}, nil)
	la1, la2 := mustAcquire(t, a), mustAcquire(t, a)
	lb1 := mustAcquire(t, b)
	if lim.Used() != 3 {
		t.Fatalf("Used = %d, want 3", lim.Used())
	}
	// A fourth server would exceed the cap: bob's second client waits.
	ch := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acquireAsync(ctx, b, 0, ch)
	waitStats(t, b, "bob's client to queue", func(st Stats) bool { return st.ClientsWaiting == 1 })
	assertNothingOn(t, ch, "the cap is reached")
	if got := da.live.Load() + db.live.Load(); got != 3 {
		t.Fatalf("%d servers live under a cap of 3", got)
	}
	// alice's released server parks idle, and is reclaimed for bob.
	la1.Release()
	r := recv(t, ch, "bob's client to get a server once alice has an idle one")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := da.live.Load() + db.live.Load(); got > 3 {
		t.Fatalf("%d servers live under a cap of 3", got)
	}
	r.lease.Release()
	la2.Release()
	lb1.Release()
	assertIdle(t, a)
	assertIdle(t, b)
	if lim.Used() != int(da.live.Load()+db.live.Load()) {
		t.Fatalf("limit counts %d, servers live %d", lim.Used(), da.live.Load()+db.live.Load())
	}
}

func TestALimitSlotFreedByAClosedServerWakesAWaitingPool(t *testing.T) {
	lim := NewLimit("max_user_connections alice", 1)
	a, _ := newTestPool(t, Config[*fakeServer]{Name: "one/alice", Limits: []*Limit{lim}, Settings: Settings{Size: 1}}, nil)
	b, _ := newTestPool(t, Config[*fakeServer]{Name: "two/alice", Limits: []*Limit{lim}, Settings: Settings{Size: 1}}, nil)
	la := mustAcquire(t, a)
	ch := make(chan result, 1)
	acquireAsync(context.Background(), b, 0, ch)
	waitStats(t, b, "the second pool's client to queue", func(st Stats) bool { return st.ClientsWaiting == 1 })
	la.Server().reusable.Store(false) // closed on release: its slot frees
	la.Release()
	r := recv(t, ch, "the waiting pool to dial once the slot is free")
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.lease.Release()
}

func TestSharedLimitsHoldUnderConcurrentLoad(t *testing.T) {
	lim := NewLimit("max_db_connections app", 4)
	var pools []*testPool
	var dialers []*fakeDialer
	for _, name := range []string{"app/a", "app/b", "app/c"} {
		p, d := newTestPool(t, Config[*fakeServer]{Name: name, Limits: []*Limit{lim}, Settings: Settings{Size: 3}}, nil)
		pools, dialers = append(pools, p), append(dialers, d)
	}
	live := func() int64 {
		var n int64
		for _, d := range dialers {
			n += d.live.Load()
		}
		return n
	}
	stop := make(chan struct{})
	var peak int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			peak = max(peak, live())
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pools[w%len(pools)]
			for range 100 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(3000))*time.Microsecond)
				l, err := p.Acquire(ctx)
				cancel()
				if err != nil {
					continue
				}
				l.Server().reusable.Store(rand.IntN(4) != 0)
				l.Release()
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if peak > 4 {
		t.Fatalf("%d servers were live at once under a cap of 4", peak)
	}
	for _, p := range pools {
		assertIdle(t, p)
	}
	if int64(lim.Used()) != live() {
		t.Fatalf("limit counts %d, servers live %d", lim.Used(), live())
	}
}
