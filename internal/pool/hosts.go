package pool

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// MaxHosts bounds the hosts of one pool (a primary and its replicas).
const MaxHosts = 64

// Host is one of the hosts a pool's servers log in to. A pool with several
// keeps track of each one's servers; its size and shared caps count them
// together.
type Host struct {
	Name   string // "10.0.0.1:5432": for stats and errors
	Weight int    // its share of the leases against the others'; <= 0 counts as 1
}

// Balance says which host a new lease goes to.
type Balance uint8

const (
	// LeastBusy picks the host with the fewest leases outstanding for its
	// weight; ties go round robin.
	LeastBusy Balance = iota
	// FirstUp keeps the hosts' order: the first one up serves
	// (libpq's load_balance_hosts=disable).
	FirstUp
	// RoundRobin takes the hosts up in turn (PgBouncer's load_balance_hosts).
	RoundRobin
	// Random picks any host up (libpq's load_balance_hosts=random).
	Random
)

// hostState is what the pool knows of one host. Its counters change only
// where the pool's own do, under the pool's lock.
type hostState struct {
	Host
	down       bool  // SetHostUp(false): out of the choice; its servers close as they come back
	active     int   // leases outstanding on it
	connecting int   // dials in flight to it
	chosen     int64 // leases granted on it
	// tier: the choice takes a host of the lowest tier it can
	// (Config.TierOf its last server dialled).
	tier int
	out  outage
}

func (h *hostState) weight() int { return max(h.Weight, 1) }

// HostStats is one host of a pool, as Stats reports it.
type HostStats struct {
	Name        string
	Up          bool  // in the choice (SetHostUp)
	Unreachable bool  // its last dial failed and none succeeded since
	Outstanding int   // leases held on it now
	Idle        int   // its idle servers
	Connecting  int   // dials in flight to it
	Chosen      int64 // leases granted on it
}

// hostsOf is the pool's hosts: one nameless host when the config names none.
// More than MaxHosts is a caller's bug: the choice keeps a bit per host.
func hostsOf(hs []Host) []hostState {
	if len(hs) == 0 {
		return []hostState{{}}
	}
	if len(hs) > MaxHosts {
		panic(fmt.Sprintf("pool: %d hosts; at most %d", len(hs), MaxHosts))
	}
	out := make([]hostState, len(hs))
	for i, h := range hs {
		out[i].Host = h
	}
	return out
}

// grantLocked counts a lease granted on host i.
func (p *Pool[S]) grantLocked(i int) {
	p.mu.active++
	p.mu.hosts[i].active++
	p.mu.hosts[i].chosen++
}

// pickLocked chooses among the hosts up for which ok holds, of the lowest
// tier among them, under the pool's balance; load is what LeastBusy
// compares. It returns -1 if none.
func (p *Pool[S]) pickLocked(ok func(i int) bool, load func(h *hostState) int) int {
	hs := p.mu.hosts
	n, best, seen, tier := len(hs), -1, 0, -1
	for i := range hs {
		if h := &hs[i]; !h.down && (tier < 0 || h.tier < tier) && ok(i) {
			tier = h.tier
		}
	}
scan:
	for k := range n {
		i := (p.mu.next + k) % n
		if p.cfg.Balance == FirstUp {
			i = k
		}
		h := &hs[i]
		if h.down || h.tier != tier || !ok(i) {
			continue
		}
		switch p.cfg.Balance {
		case FirstUp, RoundRobin:
			best = i
			break scan
		case Random:
			// Reservoir sampling: every candidate has the same odds.
			if seen++; rand.N(seen) == 0 {
				best = i
			}
		default:
			// a/wa < b/wb without division. On a tie the first from the
			// cursor stays, and the cursor moves past the one chosen.
			if b := best; b < 0 || load(h)*hs[b].weight() < load(&hs[b])*h.weight() {
				best = i
			}
		}
	}
	if best >= 0 {
		p.mu.next = best + 1
	}
	return best
}

// idleIndexLocked is the index in p.mu.idle of the server a lease takes
// now: the most recently parked one of the host chosen among those with
// an idle server, or -1.
func (p *Pool[S]) idleIndexLocked() int {
	n := len(p.mu.idle)
	if len(p.mu.hosts) == 1 {
		return n - 1 // one host: no choice to make
	}
	var has uint64
	for _, h := range p.mu.idle {
		has |= 1 << h.host
	}
	host := p.pickLocked(func(i int) bool { return has&(1<<i) != 0 }, outstanding)
	for i := n - 1; i >= 0 && host >= 0; i-- {
		if p.mu.idle[i].host == host {
			return i
		}
	}
	return -1
}

// outstanding is the load LeastBusy compares when an idle server is there
// to take: the leases held on the host.
func outstanding(h *hostState) int { return h.active }

// committed is the load it compares for a dial: leases held plus dials in
// flight, which will become leases for clients waiting now.
func committed(h *hostState) int { return h.active + h.connecting }

// dialHostLocked chooses the host a new server is dialled to, or -1: only
// a host whose dials are not backing off, and while its last dial failed,
// one probe at a time.
func (p *Pool[S]) dialHostLocked() int {
	return p.pickLocked(func(i int) bool {
		h := &p.mu.hosts[i]
		return !h.out.retrying && (!h.out.down || h.connecting == 0)
	}, committed)
}

// unreachableLocked reports whether no host up can be reached: every one
// is down or its last dial failed.
func (p *Pool[S]) unreachableLocked() bool {
	for i := range p.mu.hosts {
		if h := &p.mu.hosts[i]; !h.down && !h.out.down {
			return false
		}
	}
	return true
}

// SetHostUp puts host i into the choice or takes it out, as a health check
// finds it. Taken out, its idle servers close now and leased ones as their
// clients give them back; clients waiting get servers of the other hosts.
// Put in, it also counts as reachable again: a check just logged in.
func (p *Pool[S]) SetHostUp(i int, up bool) {
	p.mu.Lock()
	if p.mu.closed || i < 0 || i >= len(p.mu.hosts) {
		p.mu.Unlock()
		return
	}
	h := &p.mu.hosts[i]
	if h.down == !up && !(up && h.out.down) {
		p.mu.Unlock()
		return // nothing changes
	}
	h.down = !up
	var doomed []S
	if up {
		h.out.recovered()
		p.stopHostRetryLocked(i)
	} else {
		doomed = p.evictHostIdleLocked(i)
	}
	blocked := p.dialLocked()
	p.mu.Unlock()
	for _, s := range doomed {
		p.closeServer(s, reason.HostDown)
	}
	p.reclaim(blocked)
}

// SetHostTier puts host i in a tier, as a health check learns its role
// (Config.TierOf does the same from each server dialled).
func (p *Pool[S]) SetHostTier(i, tier int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= 0 && i < len(p.mu.hosts) {
		p.mu.hosts[i].tier = tier
	}
}

// evictHostIdleLocked takes host i's idle servers, counted as closing.
func (p *Pool[S]) evictHostIdleLocked(i int) []S {
	var out []S
	p.mu.idle = slices.DeleteFunc(p.mu.idle, func(h held[S]) bool {
		if h.host == i {
			out = append(out, h.s)
			return true
		}
		return false
	})
	p.mu.closing += len(out)
	return out
}

// hostStatsLocked is Stats' view of the hosts; nil for the one nameless
// host of a pool given none.
func (p *Pool[S]) hostStatsLocked() []HostStats {
	if len(p.cfg.Hosts) == 0 {
		return nil
	}
	out := make([]HostStats, len(p.mu.hosts))
	for i := range p.mu.hosts {
		h := &p.mu.hosts[i]
		out[i] = HostStats{Name: h.Name, Up: !h.down, Unreachable: h.out.down,
			Outstanding: h.active, Connecting: h.connecting, Chosen: h.chosen}
	}
	for _, h := range p.mu.idle {
		out[h.host].Idle++
	}
	return out
}

// moveLocked is the host a server of host took, being given back, should
// move to (it closes, and one is dialled there), or -1: a host of a lower
// tier (under any balance), or, under LeastBusy, one of the same tier that
// would still hold fewer servers for its weight than took after the move.
// That moves servers only from a host over its share to one under it, so
// a host back after an outage gets its share even in a pool that is full,
// and no server moves back and forth. (The caller's dropLocked has ruled
// out a paused pool.)
func (p *Pool[S]) moveLocked(took int) int {
	if p.mu.draining {
		return -1
	}
	hs := p.mu.hosts
	var held [MaxHosts]int // servers per host: leased, idle, connecting
	for i := range hs {
		held[i] = hs[i].active + hs[i].connecting
	}
	for _, h := range p.mu.idle {
		held[h.host]++
	}
	held[took]++ // the server being given back
	servers := func(i int) int { return held[i] }
	best := -1
	for i := range hs {
		if !p.mayTakeOverLocked(i, took) {
			continue
		}
		if hs[i].tier == hs[took].tier && (p.cfg.Balance != LeastBusy || held[i]*hs[took].weight() >= (held[took]-1)*hs[i].weight()) {
			continue // not under its share
		}
		if best < 0 || p.betterLocked(i, best, servers) {
			best = i
		}
	}
	return best
}

// moved dials a server to host to, after one given back closed to move
// there, unless the pool is full again (a dial for a waiting client took
// the place, and went to the least busy host) or a shared cap is.
func (p *Pool[S]) moved(to int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.closed && !p.mu.paused {
		p.dialSpareLocked(to)
	}
}

// rebalanceLocked dials a better host when a lease just went to another
// one only because that one had an idle server and the better none (as
// after it came back up), so that the next lease finds a server there. A
// better host is one of a lower tier (prefer-standby's standby, under any
// balance) or, under LeastBusy, a less busy one of the same tier. It dials
// within the pool's size only, one dial per host at a time.
func (p *Pool[S]) rebalanceLocked(took int) {
	if p.mu.paused || p.mu.draining {
		return
	}
	hs := p.mu.hosts
	load := func(i int) int { return committed(&hs[i]) }
	best := -1
	for i := range hs {
		if p.mayTakeOverLocked(i, took) && hs[i].connecting == 0 && (best < 0 || p.betterLocked(i, best, load)) {
			best = i
		}
	}
	if best < 0 {
		return
	}
	if hs[best].tier == hs[took].tier {
		// Busier: even without the lease just granted, which must not tip it.
		if p.cfg.Balance != LeastBusy || load(best)*hs[took].weight() >= (hs[took].active-1)*hs[best].weight() {
			return
		}
	}
	p.dialSpareLocked(best)
}

// mayTakeOverLocked reports whether host i may take over work that went
// to host took: another host, in the choice, reachable and not backing
// off, and of no higher tier.
func (p *Pool[S]) mayTakeOverLocked(i, took int) bool {
	h := &p.mu.hosts[i]
	return i != took && !h.down && !h.out.down && !h.out.retrying && h.tier <= p.mu.hosts[took].tier
}

// betterLocked reports whether host i is a better place than host b: a
// lower tier, or the same tier and less load for its weight.
func (p *Pool[S]) betterLocked(i, b int, load func(int) int) bool {
	hi, hb := &p.mu.hosts[i], &p.mu.hosts[b]
	return hi.tier < hb.tier || (hi.tier == hb.tier && load(i)*hb.weight() < load(b)*hi.weight())
}

// dialSpareLocked dials one more server to host, beyond what waiting
// clients ask for, if the pool's size and the shared caps have room; a
// full one is not worth another pool's idle server.
func (p *Pool[S]) dialSpareLocked(host int) {
	if p.totalLocked() >= p.sizeLocked() || takeAll(p.cfg.Limits, nil) != nil {
		return
	}
	p.startDialLocked(host)
}
