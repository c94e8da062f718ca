// Package admission decides which connections pgvalve serves. Clients
// that have logged in count against max_client_conn; connections still
// logging in are counted apart, so sockets that never finish a login
// cannot lock real clients out. Those are bounded in all and per address;
// when a bound is reached, the oldest silent one (of that address, for the
// per-address bound) is shed to make room. Silent means it has not sent a
// whole startup packet within Grace of connecting: a real client sends its
// startup packet at once and so is never shed, while a socket that sends
// nothing, or a byte now and then, is. When no login in the way is silent,
// the newcomer is let in over the bound, up to twice it; past that it is
// refused.
package admission

import (
	"container/list"
	"sync"
	"time"
)

// Grace is how long a new connection has to send its startup packet
// before it counts as silent. (A look at its socket could tell sooner, but
// not without waiting for the goroutine reading it.)
const Grace = 250 * time.Millisecond

// Gate admits connections. The zero value is not usable; see New.
type Gate struct {
	mu struct {
		sync.Mutex
		maxLogins, perAddr int
		logins             list.List // of *Ticket, oldest first
		byAddr             map[string]*list.List
		clients            int // logged in and admitted
		shed               int64
	}
}

// New returns a Gate allowing maxLogins logins in progress in all and
// perAddr from one address (0: no per-address bound).
func New(maxLogins, perAddr int) *Gate {
	g := &Gate{}
	g.mu.maxLogins, g.mu.perAddr = max(maxLogins, 1), perAddr
	g.mu.byAddr = make(map[string]*list.List)
	return g
}

// SetLimits changes the bounds (a reload); logins in progress over a
// lowered bound are left alone.
func (g *Gate) SetLimits(maxLogins, perAddr int) {
	g.mu.Lock()
	g.mu.maxLogins, g.mu.perAddr = max(maxLogins, 1), perAddr
	g.mu.Unlock()
}

// Ticket is one connection's place: logging in, then (maybe) a client.
type Ticket struct {
	g       *Gate
	addr    string
	since   time.Time
	shed    func()
	elem    *list.Element // in g.mu.logins; nil once out
	addrEl  *list.Element // in g.mu.byAddr[addr]
	talking bool          // sent its whole startup packet
	client  bool
	settled bool
}

// Enter counts a connection from addr that starts logging in. shed
// ends it if it must give its place to a newer one; it is called without
// the Gate's lock held and must not block. Enter returns nil, counting
// nothing, when twice the bound of logins are in progress and none is
// silent: the newcomer is then refused.
func (g *Gate) Enter(addr string, shed func()) *Ticket {
	t := &Ticket{g: g, addr: addr, shed: shed, since: time.Now()}
	g.mu.Lock()
	var victims []*Ticket
	if peers := g.mu.byAddr[addr]; g.mu.perAddr > 0 && peers != nil && peers.Len() >= g.mu.perAddr {
		if v := g.silentLocked(peers); v != nil {
			victims = append(victims, g.outLocked(v))
		}
	}
	if g.mu.logins.Len() >= g.mu.maxLogins {
		if v := g.silentLocked(&g.mu.logins); v != nil {
			victims = append(victims, g.outLocked(v))
		}
	}
	if len(victims) == 0 && g.mu.logins.Len() >= 2*g.mu.maxLogins {
		g.mu.Unlock()
		return nil
	}
	t.elem = g.mu.logins.PushBack(t)
	peers := g.mu.byAddr[addr]
	if peers == nil {
		peers = list.New()
		g.mu.byAddr[addr] = peers
	}
	t.addrEl = peers.PushBack(t)
	g.mu.shed += int64(len(victims))
	g.mu.Unlock()
	for _, v := range victims {
		v.shed()
	}
	return t
}

// maxLook bounds how many logins one entry looks at for a silent one.
const maxLook = 64

// silentLocked finds the oldest silent login in l (oldest first), looking
// at most maxLook; nil when every one it looked at is talking.
func (g *Gate) silentLocked(l *list.List) *Ticket {
	n := 0
	quiet := time.Now().Add(-Grace)
	for e := l.Front(); e != nil && n < maxLook; e, n = e.Next(), n+1 {
		t := e.Value.(*Ticket)
		if !t.talking && t.since.Before(quiet) {
			return t
		}
	}
	return nil
}

// Talking records that t's client sent its whole startup packet: it is no
// longer shed to make room.
func (t *Ticket) Talking() {
	t.g.mu.Lock()
	t.talking = true
	t.g.mu.Unlock()
}

// outLocked takes t out of the logins in progress and returns it.
func (g *Gate) outLocked(t *Ticket) *Ticket {
	if t.elem == nil {
		return t
	}
	g.mu.logins.Remove(t.elem)
	peers := g.mu.byAddr[t.addr]
	peers.Remove(t.addrEl)
	if peers.Len() == 0 {
		delete(g.mu.byAddr, t.addr)
	}
	t.elem, t.addrEl = nil, nil
	return t
}

// Admit ends t's login: it becomes a client if fewer than maxClients are,
// and reports whether it did. A ticket shed meanwhile is not admitted.
func (t *Ticket) Admit(maxClients int) bool {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.elem == nil || t.settled {
		return false // shed, or settled already
	}
	g.outLocked(t)
	t.settled = true
	if g.mu.clients >= max(maxClients, 1) {
		return false
	}
	g.mu.clients++
	t.client = true
	return true
}

// Done releases t's place, whatever it was; call it once the connection
// is closed.
func (t *Ticket) Done() {
	g := t.g
	g.mu.Lock()
	g.outLocked(t)
	if t.client {
		g.mu.clients--
		t.client = false
	}
	t.settled = true
	g.mu.Unlock()
}

// Counts is the gate's state: logins in progress, admitted clients, and
// how many logins were shed since start.
type Counts struct {
	Logins, Clients int
	Shed            int64
}

// Counts returns the gate's state now.
func (g *Gate) Counts() Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Counts{Logins: g.mu.logins.Len(), Clients: g.mu.clients, Shed: g.mu.shed}
}
