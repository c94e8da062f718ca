package admission

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// aged makes t look connected for longer than Grace, as a silent socket
// would be by the time it is shed.
func aged(t *Ticket) *Ticket {
	t.since = t.since.Add(-2 * Grace)
	return t
}

// A login over the bound sheds the oldest login in progress, never a
// client that logged in.
func TestTheOldestLoginGivesWayToANewOne(t *testing.T) {
	g := New(2, 0)
	var shed []string
	enter := func(name string) *Ticket {
		return aged(g.Enter("10.0.0.1", func() { shed = append(shed, name) }))
	}
	admitted := enter("admitted")
	if !admitted.Admit(10) {
		t.Fatal("the first client was not admitted")
	}
	enter("old")
	enter("middle")
	newest := enter("new")
	if len(shed) != 1 || shed[0] != "old" {
		t.Fatalf("shed %v, want the oldest login only", shed)
	}
	if c := g.Counts(); c.Logins != 2 || c.Clients != 1 || c.Shed != 1 {
		t.Fatalf("counts %+v, want 2 logins, 1 client, 1 shed", c)
	}
	if !newest.Admit(10) {
		t.Fatal("the newest login was not admitted")
	}
}

// One address cannot hold more than its share of logins: its own oldest
// gives way, and other addresses are untouched.
func TestOneAddressShedsOnlyItsOwnLogins(t *testing.T) {
	g := New(100, 2)
	var shed []string
	enter := func(addr, name string) *Ticket {
		return aged(g.Enter(addr, func() { shed = append(shed, name) }))
	}
	enter("a", "a1")
	enter("b", "b1")
	enter("a", "a2")
	enter("a", "a3")
	if len(shed) != 1 || shed[0] != "a1" {
		t.Fatalf("shed %v, want a1", shed)
	}
}

// max_client_conn counts admitted clients only; a client that leaves frees
// its place; a shed ticket is never admitted.
func TestMaxClientsCountsAdmittedClientsOnly(t *testing.T) {
	g := New(10, 0)
	first := g.Enter("a", func() {})
	if !first.Admit(1) {
		t.Fatal("not admitted under the limit")
	}
	second := g.Enter("a", func() {})
	if second.Admit(1) {
		t.Fatal("admitted over max_client_conn")
	}
	second.Done()
	first.Done()
	third := g.Enter("a", func() {})
	if !third.Admit(1) {
		t.Fatal("the place the first client left was not free")
	}
	third.Done()
	g2 := New(1, 0)
	shedOne := aged(g2.Enter("a", func() {}))
	g2.Enter("a", func() {})
	if shedOne.Admit(5) {
		t.Fatal("a shed login was admitted")
	}
}

// Under concurrent entries and exits the counts come back to zero.
func TestConcurrentTicketsLeaveTheGateEmpty(t *testing.T) {
	g := New(8, 3)
	var wg sync.WaitGroup
	var shed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			for j := range 500 {
				tk := g.Enter(string(rune('a'+i%4)), func() { shed.Add(1) })
				if j%2 == 0 {
					tk.Admit(4)
				}
				tk.Done()
			}
		})
	}
	wg.Wait()
	if c := g.Counts(); c.Logins != 0 || c.Clients != 0 || c.Shed != shed.Load() {
		t.Fatalf("counts %+v after every ticket is done (shed called %d times)", c, shed.Load())
	}
}

// A login that sent its startup packet is never shed: the newcomer is let
// in over the bound instead.
func TestATalkingLoginIsNeverShed(t *testing.T) {
	g := New(1, 0)
	shed := false
	talker := aged(g.Enter("a", func() { shed = true }))
	talker.Talking()
	g.Enter("a", func() {})
	if shed {
		t.Fatal("a login that sent its startup packet was shed")
	}
	if c := g.Counts(); c.Logins != 2 || c.Shed != 0 {
		t.Fatalf("counts %+v, want both logins in, none shed", c)
	}
}

// A connection younger than Grace is not shed: it may be a real client
// whose startup packet is on its way.
func TestANewConnectionIsNotShedWithinItsGrace(t *testing.T) {
	g := New(1, 0)
	shed := false
	g.Enter("a", func() { shed = true })
	g.Enter("a", func() {})
	if shed {
		t.Fatal("a connection was shed within its grace")
	}
	if g.Enter("a", func() {}) != nil {
		t.Fatal("a third login was let in past twice the bound")
	}
}
