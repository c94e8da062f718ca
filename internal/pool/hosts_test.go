package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// hostsPool is a pool of size over hosts named a, b, ... with the weights
// given (0: the default).
func hostsPool(t testing.TB, size int, balance Balance, weights ...int) (*testPool, *fakeDialer) {
	t.Helper()
	var hosts []Host
	for i, w := range weights {
		hosts = append(hosts, Host{Name: string(rune('a' + i)), Weight: w})
	}
	return newTestPool(t, Config[*fakeServer]{Hosts: hosts, Balance: balance,
		Settings: Settings{Size: size, WaitTimeout: eventually}}, nil)
}

// hold acquires n leases one after the other and keeps them.
func hold(t testing.TB, p *testPool, n int) []*testLease {
	t.Helper()
	var out []*testLease
	for range n {
		out = append(out, mustAcquire(t, p))
	}
	return out
}

// perHost counts leases by the host each says it is on, checking that the
// server behind it was dialled to that host.
func perHost(t testing.TB, hosts int, leases []*testLease) []int {
	t.Helper()
	n := make([]int, hosts)
	for _, l := range leases {
		if l.Server().host != l.Host() {
			t.Fatalf("a lease says host %d for a server dialled to host %d", l.Host(), l.Server().host)
		}
		n[l.Host()]++
	}
	return n
}

func releaseAll(leases []*testLease) {
	for _, l := range leases {
		l.Release()
	}
}

// outstandingProblem compares what the pool says each host has outstanding
// with the leases really held; "" when they agree.
func outstandingProblem(st Stats, held []*testLease) string {
	want := make([]int, len(st.Hosts))
	for _, l := range held {
		want[l.Host()]++
	}
	sum := 0
	for i, h := range st.Hosts {
		if h.Outstanding != want[i] {
			return fmt.Sprintf("host %s: %d outstanding, %d leases held", h.Name, h.Outstanding, want[i])
		}
		sum += h.Outstanding
	}
	if sum != st.ServersActive {
		return fmt.Sprintf("hosts have %d outstanding, the pool %d active", sum, st.ServersActive)
	}
	return ""
}

func TestNewLeasesGoToTheHostWithFewestOutstanding(t *testing.T) {
	p, _ := hostsPool(t, 10, LeastBusy, 0, 0)
	leases := hold(t, p, 4)
	if got := perHost(t, 2, leases); !slices.Equal(got, []int{2, 2}) {
		t.Fatalf("four leases held at once went %v to hosts a, b; want 2, 2", got)
	}
	// Host a is slow: its two leases stay out while b's come back.
	var slow []*testLease
	for _, l := range leases {
		if l.Host() == 0 {
			slow = append(slow, l)
		} else {
			l.Release()
		}
	}
	for i := range 10 {
		l := mustAcquire(t, p)
		if l.Host() != 1 {
			t.Fatalf("lease %d went to host %d while host a held 2 and host b none", i, l.Host())
		}
		l.Release()
	}
	st := p.Stats()
	if st.Hosts[0].Chosen != 2 || st.Hosts[1].Chosen != 12 {
		t.Fatalf("chosen counts %d, %d; want 2 for a and 12 for b", st.Hosts[0].Chosen, st.Hosts[1].Chosen)
	}
	releaseAll(slow)
	if got := perHost(t, 2, hold(t, p, 2)); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("once host a's leases came back, two held went %v; want 1, 1", got)
	}
}

func TestWeightsShareLeasesInProportion(t *testing.T) {
	p, _ := hostsPool(t, 8, LeastBusy, 3, 1)
	if got := perHost(t, 2, hold(t, p, 8)); !slices.Equal(got, []int{6, 2}) {
		t.Fatalf("eight leases held over weights 3 and 1 went %v; want 6, 2", got)
	}
}

func TestAHostTakenDownClosesItsServersAndGetsNoLease(t *testing.T) {
	closed := make(chan reason.Reason, 10)
	p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b"}},
		Settings: Settings{Size: 4, WaitTimeout: eventually},
		Closed:   func(s *fakeServer, why reason.Reason) { closed <- why }}, nil)
	leases := hold(t, p, 4)
	var onB []*testLease
	for _, l := range leases {
		if l.Host() == 1 {
			onB = append(onB, l)
		}
	}
	onB[0].Release() // parked idle on b
	p.SetHostUp(1, false)
	if why := <-closed; why != reason.HostDown {
		t.Fatalf("b's idle server closed for %v; want host_down", why)
	}
	onB[1].Release() // leased when b went down: it finishes, then closes
	if why := <-closed; why != reason.HostDown {
		t.Fatalf("b's leased server closed on release for %v; want host_down", why)
	}
	for i := range 6 {
		l := mustAcquire(t, p)
		if l.Host() != 0 {
			t.Fatalf("lease %d went to host b, which is down", i)
		}
		l.Release()
	}
	if st := p.Stats(); st.Hosts[1].Up || st.Hosts[1].Idle != 0 {
		t.Fatalf("host b after going down: %+v; want down with no idle server", st.Hosts[1])
	}
	p.SetHostUp(1, true)
	// Host a holds two leases and has an idle server; b has none. A lease
	// takes a's idle server now, and dials b for the next one.
	first := mustAcquire(t, p)
	waitStats(t, p, "a server dialled to host b once it is up", func(st Stats) bool { return st.Hosts[1].Idle == 1 })
	second := mustAcquire(t, p)
	if first.Host() != 0 || second.Host() != 1 {
		t.Fatalf("after b came back, leases went to %d then %d; want a's idle server, then b", first.Host(), second.Host())
	}
	releaseAll(append(leases[:0:0], first, second))
	for _, l := range leases {
		if l.Host() == 0 {
			l.Release()
		}
	}
}

func TestAnUnreachableHostLeavesTheOthersServing(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b"}},
		Settings: Settings{Size: 4, WaitTimeout: eventually, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}},
		func(d *fakeDialer) { d.unreachable = func(host int) bool { return host == 0 } })
	leases := hold(t, p, 3)
	if got := perHost(t, 2, leases); !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("with host a unreachable, leases went %v; want all on b", got)
	}
	if st := p.Stats(); !st.Hosts[0].Unreachable || st.Hosts[1].Unreachable {
		t.Fatalf("hosts %+v; want a unreachable and b not", st.Hosts)
	}
	releaseAll(leases)
	assertNoServerLost(t, p, d)
}

// A host that went silent (its dials hang) is probed for nobody: a client
// waiting meanwhile gets a server of another host, not the probe's timeout.
func TestAProbeOfAnUnreachableHostDelaysNobody(t *testing.T) {
	var failing, silent atomic.Bool
	failing.Store(true)
	p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b"}},
		Settings: Settings{Size: 4, WaitTimeout: time.Hour, DialTimeout: time.Hour, RetryMin: time.Millisecond, RetryMax: time.Millisecond}},
		func(d *fakeDialer) {
			d.unreachable = func(host int) bool { return host == 0 && failing.Load() }
			d.hangs = func(host int) bool { return host == 0 && silent.Load() }
		})
	first := mustAcquire(t, p) // a fails at once: b serves, and a is known unreachable
	silent.Store(true)
	defer first.Release()
	if !poll(func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.mu.hosts[0].out.retrying }) {
		t.Fatal("host a's backoff did not end")
	}
	second := mustAcquire(t, p)
	defer second.Release()
	if first.Host() != 1 || second.Host() != 1 {
		t.Fatalf("leases went to hosts %d and %d; want both on b while a is unreachable", first.Host(), second.Host())
	}
}

func TestEveryHostUnreachableEndsAWaitAsUnreachable(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b"}},
		Settings: Settings{Size: 2, WaitTimeout: 50 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}},
		func(d *fakeDialer) { d.unreachable = func(int) bool { return true } })
	_, err := p.Acquire(context.Background())
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || !errors.Is(err, errDial) {
		t.Fatalf("Acquire with every host unreachable: %v; want an UnreachableError with the last dial's", err)
	}
}

func TestFirstUpKeepsTheHostsOrder(t *testing.T) {
	p, _ := hostsPool(t, 6, FirstUp, 0, 0)
	if got := perHost(t, 2, hold(t, p, 3)); !slices.Equal(got, []int{3, 0}) {
		t.Fatalf("load_balance_hosts=disable sent leases %v; want all to the first host", got)
	}
	p.SetHostUp(0, false)
	if l := mustAcquire(t, p); l.Host() != 1 {
		t.Fatalf("with the first host down, a lease went to host %d; want the second", l.Host())
	}
}

func TestRoundRobinAndRandomUseEveryHost(t *testing.T) {
	for _, b := range []Balance{RoundRobin, Random} {
		t.Run(fmt.Sprint(b), func(t *testing.T) {
			p, _ := hostsPool(t, 64, b, 0, 0, 0)
			got := perHost(t, 3, hold(t, p, 60))
			for i, n := range got {
				if n == 0 {
					t.Fatalf("60 leases went %v: host %d got none", got, i)
				}
			}
			if b == RoundRobin && !slices.Equal(got, []int{20, 20, 20}) {
				t.Fatalf("round robin sent 60 leases %v; want 20 each", got)
			}
		})
	}
}

// The seeds' bug, proven impossible: whatever clients and hosts do, each
// host's outstanding count is the number of leases really held on it.
func TestOutstandingPerHostIsAlwaysTheLeasesHeld(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			var unreachable [3]atomic.Bool
			p, d := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b", Weight: 2}, {Name: "c"}},
				Settings: Settings{Size: 6, WaitTimeout: 20 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}},
				func(d *fakeDialer) { d.unreachable = func(host int) bool { return unreachable[host].Load() } })
			var held []*testLease
			for step := range 300 {
				switch op := rng.IntN(10); {
				case op < 4: // acquire
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(5))*time.Millisecond)
					if l, err := p.Acquire(ctx); err == nil {
						held = append(held, l)
					}
					cancel()
				case op < 7 && len(held) > 0: // release, the server broken or not
					i := rng.IntN(len(held))
					held[i].Server().reusable.Store(rng.IntN(4) != 0)
					held[i].Release()
					held[i].Release() // twice: the second is a no-op
					held = slices.Delete(held, i, i+1)
				case op < 8:
					p.SetHostUp(rng.IntN(3), rng.IntN(3) != 0)
				case op < 9:
					unreachable[rng.IntN(3)].Store(rng.IntN(2) == 0)
				default:
					if l := p.TryAcquire(); l != nil {
						held = append(held, l)
					}
				}
				if problem := outstandingProblem(p.Stats(), held); problem != "" {
					t.Fatalf("step %d: %s", step, problem)
				}
			}
			releaseAll(held)
			st := assertIdle(t, p)
			if problem := outstandingProblem(st, nil); problem != "" {
				t.Fatalf("at rest: %s", problem)
			}
			if n := d.maxLive.Load(); n > 6 {
				t.Fatalf("%d servers were open at once; the pool's size is 6", n) // servers moved between hosts included
			}
		})
	}
}

// The check above would see a count that drifts: here one does, by a
// lease the test forgets it holds.
func TestTheOutstandingCheckCatchesADriftedCount(t *testing.T) {
	p, _ := hostsPool(t, 4, LeastBusy, 0, 0)
	held := hold(t, p, 3)
	defer releaseAll(held)
	if outstandingProblem(p.Stats(), held) != "" {
		t.Fatal("the check found a problem with every lease accounted for")
	}
	if outstandingProblem(p.Stats(), held[1:]) == "" {
		t.Fatal("the check missed a host count one higher than the leases held")
	}
}

func TestALowerTierServesFirstAndAHigherOneOnlyWithoutIt(t *testing.T) {
	var bUnreachable atomic.Bool
	p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "primary"}, {Name: "standby"}},
		Settings: Settings{Size: 10, WaitTimeout: eventually, RetryMin: time.Millisecond, RetryMax: time.Millisecond},
		TierOf:   func(s *fakeServer) int { return 1 - s.host }}, // the primary's servers say tier 1
		func(d *fakeDialer) { d.unreachable = func(host int) bool { return host == 1 && bUnreachable.Load() } })
	// Both hosts are in tier 0 until a server says otherwise: the first
	// lease dials the primary, whose server puts it in tier 1.
	if first := mustAcquire(t, p); first.Host() != 0 {
		t.Fatal("the first lease did not go to the first host")
	}
	if got := perHost(t, 2, hold(t, p, 4)); !slices.Equal(got, []int{0, 4}) {
		t.Fatalf("with the primary in a higher tier, leases went %v; want all on the standby", got)
	}
	p.SetHostUp(1, false)
	if l := mustAcquire(t, p); l.Host() != 0 {
		t.Fatal("with the standby down, a lease did not go to the primary")
	}
	bUnreachable.Store(true)
	p.SetHostUp(1, true)
	if l := mustAcquire(t, p); l.Host() != 0 {
		t.Fatal("with the standby up but unreachable, a lease did not go to the primary")
	}
}

func TestAHostThatPassesACheckIsReachableAgainAtOnce(t *testing.T) {
	var aUnreachable atomic.Bool
	aUnreachable.Store(true)
	p, _ := newTestPool(t, Config[*fakeServer]{Hosts: []Host{{Name: "a"}, {Name: "b"}},
		Settings: Settings{Size: 4, WaitTimeout: eventually, RetryMin: time.Hour, RetryMax: time.Hour}},
		func(d *fakeDialer) { d.unreachable = func(host int) bool { return host == 0 && aUnreachable.Load() } })
	held := hold(t, p, 2) // a fails once and backs off for an hour; b serves
	defer releaseAll(held)
	if st := p.Stats(); !st.Hosts[0].Unreachable {
		t.Fatalf("host a after a failed dial: %+v; want unreachable", st.Hosts[0])
	}
	aUnreachable.Store(false)
	p.SetHostUp(0, true) // a health check logged in
	if st := p.Stats(); st.Hosts[0].Unreachable {
		t.Fatalf("host a after passing a check: %+v; want reachable", st.Hosts[0])
	}
	if l := mustAcquire(t, p); l.Host() != 0 {
		t.Fatal("the next lease did not go to host a, the less busy one, once it passed a check")
	} else {
		l.Release()
	}
}

func TestAPoolOfMoreThanMaxHostsIsRefused(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a pool of MaxHosts+1 hosts was made; its choice keeps one bit per host")
		}
	}()
	New(Config[*fakeServer]{Hosts: make([]Host, MaxHosts+1)})
}
