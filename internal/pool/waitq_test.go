package pool

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// One timer serves all waits; a wait queued after a reload shortened the
// timeout must still end on its own, earlier deadline.
func TestAWaitQueuedAfterTheTimeoutShrankEndsBeforeOlderLongerWaits(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: time.Hour}}, nil)
	held := mustAcquire(t, p)
	defer held.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := make(chan result, 1)
	enqueue(t, ctx, p, 1, old)

	p.Reconfigure(Settings{Size: 1, WaitTimeout: 20 * time.Millisecond})
	young := make(chan result, 1)
	enqueue(t, context.Background(), p, 1, young)
	r := recv(t, young, "the wait queued under the short timeout to end")
	var wte *WaitTimeoutError
	if !errors.As(r.err, &wte) || wte.Timeout != 20*time.Millisecond {
		t.Fatalf("young waiter got %v; want its own 20ms wait timeout", r.err)
	}
	assertNothingOn(t, old, "the wait queued under the hour-long timeout must still be waiting")
	if st := p.Stats(); st.ClientsWaiting != 1 || st.Timeouts != 1 {
		t.Fatalf("after one timeout: %+v; want one client still waiting and one timeout counted", st)
	}
	cancel()
	if r := recv(t, old, "the old waiter to give up"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("old waiter got %v; want its own cancellation", r.err)
	}
}

// Waiters come back for reuse; one that timed out, gave up or was served
// must never carry a grant into its next wait.
func TestReusedWaitersNeverCarryAnEarlierGrant(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: 2 * time.Millisecond}}, nil)
	for round := range 200 {
		held := mustAcquirePatiently(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(round%3)*time.Millisecond)
		done := make(chan result, 1)
		acquireAsync(ctx, p, round, done)
		if round%2 == 0 {
			held.Release()
			held = nil
		}
		r := recv(t, done, "a waiter to finish")
		cancel()
		if r.err == nil {
			r.lease.Release()
		}
		if held != nil {
			if r.err == nil {
				t.Fatalf("round %d: a waiter got a lease while the only server was held", round)
			}
			held.Release()
		}
	}
	if st := p.Stats(); st.ServersActive != 0 || st.ClientsWaiting != 0 {
		t.Fatalf("after the rounds: %+v; want nothing leased and nobody waiting", st)
	}
	assertNoServerLost(t, p, d)
}

// A wait costs no allocation beyond its lease: clients outnumbering
// servers is the common case.
func TestAWaitAllocatesNothingButItsLease(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: time.Minute}}, nil)
	held := mustAcquire(t, p)
	wait := func() {
		h := held
		go func() {
			for p.Stats().ClientsWaiting == 0 {
				runtime.Gosched()
			}
			h.Release() // only once the Acquire below waits
		}()
		l, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = l
	}
	wait() // warm the spare waiter
	allocs := testing.AllocsPerRun(200, wait)
	held.Release()
	// The lease, and the goroutine that hands the server back.
	if allocs > 2 {
		t.Fatalf("a wait allocates %.1f times; want the lease and the releasing goroutine only", allocs)
	}
}
