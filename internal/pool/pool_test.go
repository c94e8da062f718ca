package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewClampsSizeToAtLeastOneAndKeepsTheName(t *testing.T) {
	cases := []struct {
		name     string
		size     int
		wantSize int
	}{
		{"zero size", 0, 1},
		{"negative size", -3, 1},
		{"one", 1, 1},
		{"ten", 10, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Name: "app/" + tc.name, Settings: Settings{Size: tc.size}}, nil)
			st := p.Stats()
			if st.Size != tc.wantSize {
				t.Fatalf("Size = %d, want %d", st.Size, tc.wantSize)
			}
			if p.Name() != "app/"+tc.name || st.Name != p.Name() {
				t.Fatalf("Name() = %q, Stats().Name = %q, want %q", p.Name(), st.Name, "app/"+tc.name)
			}
			if d.dials.Load() != 0 || st.Total() != 0 {
				t.Fatalf("a new pool dialled %d servers and holds %d; it must dial on demand", d.dials.Load(), st.Total())
			}
		})
	}
}

func TestAcquireReusesAnIdleServerInsteadOfDialling(t *testing.T) {
	cases := []struct {
		name     string
		size     int
		parallel int // leases held at once in each round
		rounds   int
	}{
		{"one server one client", 1, 1, 20},
		{"three servers held together", 3, 3, 20},
		{"fewer clients than servers", 5, 2, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: tc.size}}, nil)
			seen := map[*fakeServer]bool{}
			for range tc.rounds {
				leases := make([]*testLease, tc.parallel)
				for i := range leases {
					leases[i] = mustAcquire(t, p)
					if leases[i].Acquired().IsZero() {
						t.Fatal("lease has no acquisition time")
					}
					seen[leases[i].Server()] = true
				}
				for _, l := range leases {
					l.Release()
				}
			}
			if got := d.dials.Load(); got != int64(tc.parallel) {
				t.Fatalf("dialled %d times over %d rounds, want %d (one per concurrently held lease)", got, tc.rounds, tc.parallel)
			}
			if len(seen) != tc.parallel {
				t.Fatalf("clients saw %d distinct servers, want %d", len(seen), tc.parallel)
			}
			st := assertNoServerLost(t, p, d)
			if st.ServersIdle != tc.parallel {
				t.Fatalf("ServersIdle = %d, want %d", st.ServersIdle, tc.parallel)
			}
			if want := int64(tc.rounds * tc.parallel); st.Acquires != want {
				t.Fatalf("Acquires = %d, want %d", st.Acquires, want)
			}
			// Only the acquires that found nothing idle had to queue for a dial.
			if st.Waits != int64(tc.parallel) {
				t.Fatalf("Waits = %d, want %d", st.Waits, tc.parallel)
			}
		})
	}
}

func TestWaitersAreServedInFIFOOrder(t *testing.T) {
	cases := []struct {
		name     string
		size     int
		waiters  int
		reusable bool // false: every release closes the server, and a fresh dial serves the next waiter
	}{
		{"one server passed along", 1, 8, true},
		{"three servers passed along", 3, 10, true},
		{"one server replaced every time", 1, 6, false},
		{"three servers replaced every time", 3, 8, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: tc.size}}, nil)
			var toRelease []*testLease
			for range tc.size {
				toRelease = append(toRelease, mustAcquire(t, p))
			}
			results := make(chan result, tc.waiters)
			enqueue(t, context.Background(), p, tc.waiters, results)

			for want := range tc.waiters {
				l := toRelease[0]
				toRelease = toRelease[1:]
				l.Server().reusable.Store(tc.reusable)
				l.Release()
				r := recv(t, results, "a grant")
				if r.err != nil {
					t.Fatalf("waiter %d: %v", r.idx, r.err)
				}
				if r.idx != want {
					t.Fatalf("grant %d went to waiter %d, want waiter %d (FIFO)", want, r.idx, want)
				}
				if r.lease.Server().closed.Load() != 0 {
					t.Fatalf("waiter %d was granted closed %v", r.idx, r.lease.Server())
				}
				if got, wantWaiting := p.Stats().ClientsWaiting, tc.waiters-want-1; got != wantWaiting {
					t.Fatalf("after grant %d ClientsWaiting = %d, want %d", want, got, wantWaiting)
				}
				toRelease = append(toRelease, r.lease)
			}
			for _, l := range toRelease {
				l.Release()
			}
			st := assertNoServerLost(t, p, d)
			wantDials := int64(tc.size)
			if !tc.reusable {
				wantDials += int64(tc.waiters)
			}
			if got := d.dials.Load(); got != wantDials {
				t.Fatalf("dialled %d times, want %d", got, wantDials)
			}
			if st.Waits < int64(tc.waiters) {
				t.Fatalf("Waits = %d, want at least %d", st.Waits, tc.waiters)
			}
		})
	}
}

func TestAServerReleasedToAQueueGoesToTheWaiterNotToANewcomer(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
	held := mustAcquire(t, p)
	results := make(chan result, 1)
	enqueue(t, context.Background(), p, 1, results)
	held.Release()
	// The server is handed to the waiter under the pool lock, so a newcomer
	// arriving now finds nothing idle and cannot take it.
	if st := p.Stats(); st.ServersIdle != 0 || st.ServersActive != 1 || st.ClientsWaiting != 0 {
		t.Fatalf("after release to a waiter: %+v, want the server active and nobody waiting", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if l, err := p.Acquire(ctx); err == nil {
		l.Release()
		t.Fatal("a newcomer took the server that was handed to the queued waiter")
	}
	r := recv(t, results, "the waiter's grant")
	if r.err != nil {
		t.Fatalf("waiter: %v", r.err)
	}
	r.lease.Release()
	assertNoServerLost(t, p, d)
}

func TestWaitTimeoutReturnsAnErrorNamingThePoolAndTimeout(t *testing.T) {
	cases := []struct {
		name    string
		pool    string
		timeout time.Duration
	}{
		{"short timeout", "sales/app", 5 * time.Millisecond},
		{"longer timeout", "billing/report", 30 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Name: tc.pool, Settings: Settings{Size: 1, WaitTimeout: tc.timeout}}, nil)
			held := mustAcquirePatiently(t, p)
			base := p.Stats().Timeouts
			for attempt := 1; attempt <= 3; attempt++ {
				l, err := p.Acquire(context.Background())
				if l != nil {
					t.Fatal("got a lease from a pool whose only server is held")
				}
				var wte *WaitTimeoutError
				if !errors.As(err, &wte) {
					t.Fatalf("err = %v (%T), want *WaitTimeoutError", err, err)
				}
				if wte.Pool != tc.pool || wte.Timeout != tc.timeout {
					t.Fatalf("WaitTimeoutError{Pool: %q, Timeout: %v}, want {%q, %v}", wte.Pool, wte.Timeout, tc.pool, tc.timeout)
				}
				msg := err.Error()
				if !strings.Contains(msg, tc.pool) || !strings.Contains(msg, tc.timeout.String()) || !strings.Contains(msg, "query_wait_timeout") {
					t.Fatalf("message %q must name query_wait_timeout, the pool and the timeout", msg)
				}
				st := p.Stats()
				if st.Timeouts != base+int64(attempt) {
					t.Fatalf("Timeouts = %d after %d timeouts (%d before)", st.Timeouts, attempt, base)
				}
				if st.ClientsWaiting != 0 {
					t.Fatalf("ClientsWaiting = %d after the waiter timed out", st.ClientsWaiting)
				}
				if st.ServersActive != 1 || st.Acquires != 1 {
					t.Fatalf("a timeout changed the lease accounting: %+v", st)
				}
			}
			held.Release()
			st := assertNoServerLost(t, p, d)
			if st.ServersIdle != 1 || d.dials.Load() != 1 {
				t.Fatalf("ServersIdle = %d, dials = %d; want the one server parked and no extra dial", st.ServersIdle, d.dials.Load())
			}
		})
	}
}

func TestWaitTimeoutDoesNotApplyWhenAServerIsIdle(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: time.Nanosecond}}, nil)
	// The first client must wait for a dial and will most likely time out,
	// but the dial completes and parks the server for its retry.
	mustAcquirePatiently(t, p).Release()
	if st := p.Stats(); st.ServersIdle != 1 {
		t.Fatalf("ServersIdle = %d, want 1", st.ServersIdle)
	}
	for range 50 {
		l, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatalf("Acquire with an idle server: %v", err)
		}
		l.Release()
	}
	assertNoServerLost(t, p, d)
	if d.dials.Load() != 1 {
		t.Fatalf("dialled %d times, want 1", d.dials.Load())
	}
}

// customCause is used to check that Acquire reports a context's cause.
var customCause = errors.New("client went away")

func TestCancelledContextWhileWaitingReturnsItsErrorAndLeavesNoWaiter(t *testing.T) {
	cases := []struct {
		name string
		// start returns the context to wait on and a func that ends it once
		// the waiter is queued (nil if it ends on its own).
		start func(t *testing.T) (context.Context, func())
		want  error
	}{
		{"cancelled while queued", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancel
		}, context.Canceled},
		{"cancelled with a cause while queued", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(context.Background())
			return ctx, func() { cancel(customCause) }
		}, customCause},
		{"deadline passes while queued", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			t.Cleanup(cancel)
			return ctx, nil
		}, context.DeadlineExceeded},
		{"already cancelled before Acquire", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, nil
		}, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
			held := mustAcquire(t, p) // the pool is full: the waiter can only queue
			ctx, end := tc.start(t)
			results := make(chan result, 1)
			acquireAsync(ctx, p, 0, results)
			if end != nil {
				waitStats(t, p, "the waiter to queue", func(st Stats) bool { return st.ClientsWaiting == 1 })
				end()
			}
			r := recv(t, results, "the waiter to give up")
			if r.lease != nil {
				t.Fatal("got a lease from a pool whose only server is held")
			}
			if !errors.Is(r.err, tc.want) {
				t.Fatalf("err = %v, want %v", r.err, tc.want)
			}
			st := p.Stats()
			if st.ClientsWaiting != 0 {
				t.Fatalf("ClientsWaiting = %d after the waiter gave up", st.ClientsWaiting)
			}
			if st.Timeouts != 1 {
				t.Fatalf("Timeouts = %d, want 1 (cancels count as timeouts)", st.Timeouts)
			}
			// The released server must go idle, not to a ghost waiter.
			held.Release()
			st = assertNoServerLost(t, p, d)
			if st.ServersIdle != 1 || st.Acquires != 1 {
				t.Fatalf("after release: ServersIdle = %d, Acquires = %d; want 1, 1", st.ServersIdle, st.Acquires)
			}
		})
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	t.Run("a second release of a reusable lease changes no counter", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2}}, nil)
		a, b := mustAcquire(t, p), mustAcquire(t, p)
		for i := range 3 {
			a.Release()
			if st := p.Stats(); st.ServersActive != 1 || st.ServersIdle != 1 {
				t.Fatalf("after release #%d of a: active=%d idle=%d, want 1 and 1", i+1, st.ServersActive, st.ServersIdle)
			}
		}
		b.Release()
		b.Release()
		st := assertNoServerLost(t, p, d)
		if st.ServersActive != 0 || st.ServersIdle != 2 {
			t.Fatalf("active=%d idle=%d, want 0 and 2", st.ServersActive, st.ServersIdle)
		}
	})

	t.Run("a second release of an unreusable lease closes the server once", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
		l := mustAcquire(t, p)
		l.Server().reusable.Store(false)
		l.Release()
		l.Release()
		st := assertNoServerLost(t, p, d)
		if c := l.Server().closed.Load(); c != 1 {
			t.Fatalf("server closed %d times, want 1", c)
		}
		if st.ServersIdle != 0 || d.live.Load() != 0 || d.dials.Load() != 1 {
			t.Fatalf("idle=%d live=%d dials=%d, want 0, 0, 1 (no waiter, no redial)", st.ServersIdle, d.live.Load(), d.dials.Load())
		}
	})

	t.Run("a second release does not hand the server to a second waiter", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
		l := mustAcquire(t, p)
		results := make(chan result, 2)
		enqueue(t, context.Background(), p, 2, results)
		l.Release()
		first := recv(t, results, "the first waiter's grant")
		if first.err != nil || first.idx != 0 {
			t.Fatalf("first grant: waiter %d err %v, want waiter 0", first.idx, first.err)
		}
		l.Release() // must be a no-op
		// release hands servers over synchronously, so a double grant would
		// already be visible here.
		if st := p.Stats(); st.ServersActive != 1 || st.ClientsWaiting != 1 || st.ServersIdle != 0 {
			t.Fatalf("after the second release: active=%d waiting=%d idle=%d, want 1, 1, 0", st.ServersActive, st.ClientsWaiting, st.ServersIdle)
		}
		assertNothingOn(t, results, "the stale second release must not serve waiter 1")
		first.lease.Release()
		second := recv(t, results, "the second waiter's grant")
		if second.err != nil || second.idx != 1 {
			t.Fatalf("second grant: waiter %d err %v, want waiter 1", second.idx, second.err)
		}
		if second.lease.Server() != first.lease.Server() || d.dials.Load() != 1 {
			t.Fatal("the server should have been passed from waiter 0 to waiter 1 without a dial")
		}
		second.lease.Release()
		assertNoServerLost(t, p, d)
	})

	t.Run("concurrent releases of one lease count once", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2}}, nil)
		keep := mustAcquire(t, p)
		l := mustAcquire(t, p)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 32 {
			wg.Go(func() {
				<-start
				l.Release()
			})
		}
		close(start)
		wg.Wait()
		if st := p.Stats(); st.ServersActive != 1 || st.ServersIdle != 1 {
			t.Fatalf("active=%d idle=%d, want 1 and 1", st.ServersActive, st.ServersIdle)
		}
		keep.Release()
		assertNoServerLost(t, p, d)
	})
}

// A wait its caller ends because it no longer needs the server (ErrNotNeeded)
// is not one that gave up; a wait ended any other way is.
func TestAWaitNoLongerNeededIsNotCountedAsGivenUp(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Name: "app/app", Settings: Settings{Size: 1}}, nil)
	held := mustAcquirePatiently(t, p)
	defer held.Release()
	for _, tc := range []struct {
		cause error
		want  int64
	}{{ErrNotNeeded, 0}, {context.Canceled, 1}} {
		base := p.Stats().Timeouts
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() { _, err := p.Acquire(ctx); done <- err }()
		for i := 0; p.Stats().ClientsWaiting != 1; i++ {
			if i == 10000 {
				t.Fatal("the Acquire never queued")
			}
			time.Sleep(time.Millisecond)
		}
		cancel(tc.cause)
		if err := <-done; !errors.Is(err, tc.cause) {
			t.Fatalf("Acquire ended with %v; want %v", err, tc.cause)
		}
		if got := p.Stats().Timeouts - base; got != tc.want {
			t.Errorf("a wait ended with %v counted %d times as given up; want %d", tc.cause, got, tc.want)
		}
	}
}
