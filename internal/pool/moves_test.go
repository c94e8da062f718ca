package pool

import (
	"slices"
	"sync"
	"testing"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// movesPool is hostsPool recording why each server closed.
func movesPool(t *testing.T, size int, balance Balance, weights ...int) (*testPool, *closedLog, *fakeDialer) {
	t.Helper()
	var hosts []Host
	for i, w := range weights {
		hosts = append(hosts, Host{Name: string(rune('a' + i)), Weight: w})
	}
	log := &closedLog{}
	p, d := newTestPool(t, Config[*fakeServer]{Hosts: hosts, Balance: balance,
		Settings: Settings{Size: size, WaitTimeout: eventually}, Closed: log.add}, nil)
	return p, log, d
}

// closedLog counts servers closed, by reason.
type closedLog struct {
	mu sync.Mutex
	n  map[reason.Reason]int
}

func (c *closedLog) add(_ *fakeServer, why reason.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[reason.Reason]int{}
	}
	c.n[why]++
}

func (c *closedLog) count(why reason.Reason) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[why]
}

// fillOnFirstHost makes every one of p's size servers live on host a, as
// after the other hosts were down, and leaves them idle with the others
// back up.
func fillOnFirstHost(t *testing.T, p *testPool, size, hosts int) {
	t.Helper()
	for i := 1; i < hosts; i++ {
		p.SetHostUp(i, false)
	}
	releaseAll(hold(t, p, size))
	for i := 1; i < hosts; i++ {
		p.SetHostUp(i, true)
	}
	if st := p.Stats(); st.Hosts[0].Idle != size {
		t.Fatalf("setup: %+v; want all %d servers idle on a", st.Hosts, size)
	}
}

// cycle acquires and releases one lease n times, as light traffic does,
// letting the dials and closes each one starts end before the next.
func cycle(t *testing.T, p *testPool, n int) {
	t.Helper()
	for range n {
		mustAcquire(t, p).Release()
		assertIdle(t, p)
	}
}

// spread holds n leases at once, as a burst does, and says how they went.
func spread(t *testing.T, p *testPool, hosts, n int) []int {
	t.Helper()
	held := hold(t, p, n)
	defer releaseAll(held)
	return perHost(t, hosts, held)
}

// idlePerHost is how many idle servers each host has, at rest.
func idlePerHost(t *testing.T, p *testPool) []int {
	t.Helper()
	assertIdle(t, p)
	var out []int
	for _, h := range p.Stats().Hosts {
		out = append(out, h.Idle)
	}
	return out
}

// A host back after an outage finds the pool full of the other host's
// servers: servers given back move to it, one at a time, until each host
// holds its share; then none moves any more.
func TestAHostBackInAFullPoolGetsItsShareOfServersByMoves(t *testing.T) {
	p, log, _ := movesPool(t, 4, LeastBusy, 0, 0)
	fillOnFirstHost(t, p, 4, 2)
	cycle(t, p, 10)
	moved := log.count(reason.HostRebalance)
	if moved == 0 || moved > 2 {
		t.Fatalf("%d servers moved from a, which held all 4; want 1 or 2 (never past an even split)", moved)
	}
	if got := spread(t, p, 2, 4); !slices.Equal(got, []int{2, 2}) {
		t.Fatalf("then four leases held at once went %v; want 2, 2", got)
	}
	cycle(t, p, 20)
	if got := spread(t, p, 2, 4); !slices.Equal(got, []int{2, 2}) || log.count(reason.HostRebalance) > 2 {
		t.Fatalf("once even: leases went %v and %d servers moved in all; want 2, 2 and no more moves",
			got, log.count(reason.HostRebalance))
	}
}

// Under a saturated pool, servers pass from client to client without
// going idle: the move still happens as they are given back.
func TestServersMoveWhileClientsWait(t *testing.T) {
	p, log, d := movesPool(t, 4, LeastBusy, 0, 0)
	fillOnFirstHost(t, p, 4, 2)
	held := hold(t, p, 4)
	var wg sync.WaitGroup
	for range 4 { // clients queued behind the four held
		wg.Go(func() { mustAcquire(t, p).Release() })
	}
	waitStats(t, p, "four clients waiting", func(st Stats) bool { return st.ClientsWaiting == 4 })
	releaseAll(held)
	wg.Wait()
	if got := idlePerHost(t, p); !slices.Equal(got, []int{2, 2}) {
		t.Fatalf("servers per host %v; want 2, 2", got)
	}
	if n := log.count(reason.HostRebalance); n != 2 {
		t.Fatalf("%d servers moved; want 2", n)
	}
	if n := d.maxLive.Load(); n > 4 {
		t.Fatalf("%d servers were open at once while they moved; the pool's size is 4", n)
	}
}

func TestMovesFollowTheWeights(t *testing.T) {
	p, _, _ := movesPool(t, 8, LeastBusy, 1, 3)
	fillOnFirstHost(t, p, 8, 2)
	cycle(t, p, 30)
	if got := spread(t, p, 2, 8); !slices.Equal(got, []int{2, 6}) {
		t.Fatalf("eight leases held at once went %v over weights 1 and 3; want 2, 6", got)
	}
}

// Only least-busy weighs hosts by load; the other balances move nothing
// between hosts of one tier.
func TestOtherBalancesMoveNoServer(t *testing.T) {
	for _, b := range []Balance{FirstUp, RoundRobin, Random} {
		p, log, _ := movesPool(t, 4, b, 0, 0)
		fillOnFirstHost(t, p, 4, 2)
		cycle(t, p, 10)
		if n := log.count(reason.HostRebalance); n != 0 {
			t.Errorf("balance %v moved %d servers; want none", b, n)
		}
	}
}

// prefer-standby: a standby back in a pool full of the primary's servers
// takes each one that serves and is given back, whatever the balance.
// (Idle servers are not moved: they serve nobody, and a burst that needs
// them moves them when it ends.)
func TestServersMoveToALowerTierUnderAnyBalance(t *testing.T) {
	for _, b := range []Balance{LeastBusy, FirstUp} {
		p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "primary"}, {Name: "standby"}}, Balance: b,
			Settings: Settings{Size: 4, WaitTimeout: eventually},
			TierOf:   func(s *fakeServer) int { return 1 - s.host }}, nil)
		fillOnFirstHost(t, p, 4, 2)
		first := spread(t, p, 2, 4) // the primary's idle servers serve this burst
		assertIdle(t, p)
		if got := spread(t, p, 2, 4); !slices.Equal(got, []int{0, 4}) {
			t.Errorf("balance %v: a burst went %v, the next %v; want the next all on the standby", b, first, got)
		}
	}
}
