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
			p, d := newTestPool(t, Config[*fakeServer]{Name: "app/" + tc.name, Size: tc.size}, nil)
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
			p, d := newTestPool(t, Config[*fakeServer]{Size: tc.size}, nil)
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
			p, d := newTestPool(t, Config[*fakeServer]{Size: tc.size}, nil)
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
	p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
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
			p, d := newTestPool(t, Config[*fakeServer]{Name: tc.pool, Size: 1, WaitTimeout: tc.timeout}, nil)
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
	p, d := newTestPool(t, Config[*fakeServer]{Size: 1, WaitTimeout: time.Nanosecond}, nil)
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
			p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Size: 2}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Size: 2}, nil)
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

func TestUnreusableServerIsClosedOnReleaseAndAWaiterGetsAFreshOne(t *testing.T) {
	cases := []struct {
		name string
		size int
	}{
		{"pool of one", 1},
		{"full pool of three", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			closing := newGate(t)
			defer closing.open()
			var closeStarted = make(chan *fakeServer, tc.size)
			p, d := newTestPool(t, Config[*fakeServer]{Size: tc.size}, func(d *fakeDialer) {
				d.onClose = func(s *fakeServer) {
					if s.id == 1 { // hold the first server's close open
						closeStarted <- s
						<-closing.ch
					}
				}
			})
			var held []*testLease
			for range tc.size {
				held = append(held, mustAcquire(t, p))
			}
			var dirty *testLease
			for _, l := range held {
				if l.Server().id == 1 {
					dirty = l
				}
			}
			results := make(chan result, 1)
			enqueue(t, context.Background(), p, 1, results)

			dirty.Server().reusable.Store(false)
			released := make(chan struct{})
			go func() { dirty.Release(); close(released) }()
			<-closeStarted
			// While the old server is closing it still occupies its slot:
			// no replacement may be dialled yet.
			st := p.Stats()
			if st.ServersClosing != 1 || st.ServersActive != tc.size-1 || st.ServersConnecting != 0 {
				t.Fatalf("while closing: %+v, want closing=1 active=%d connecting=0", st, tc.size-1)
			}
			if got := d.dials.Load(); got != int64(tc.size) {
				t.Fatalf("dialled a replacement (%d dials) before the old server finished closing", got)
			}
			closing.open()
			<-released
			r := recv(t, results, "the waiter's grant")
			if r.err != nil {
				t.Fatalf("waiter: %v", r.err)
			}
			fresh := r.lease.Server()
			if fresh == dirty.Server() || fresh.id != int64(tc.size+1) {
				t.Fatalf("waiter got %v, want the freshly dialled server#%d", fresh, tc.size+1)
			}
			if c := dirty.Server().closed.Load(); c != 1 {
				t.Fatalf("unreusable server closed %d times, want 1", c)
			}
			if m := d.maxLive.Load(); m > int64(tc.size) {
				t.Fatalf("%d servers were live at once; the replacement overlapped the closing server", m)
			}
			r.lease.Release()
			for _, l := range held {
				l.Release()
			}
			st = assertNoServerLost(t, p, d)
			if st.ServersIdle != tc.size {
				t.Fatalf("ServersIdle = %d, want %d", st.ServersIdle, tc.size)
			}
		})
	}
}

func TestDialOutlivesTheWaiterThatStartedItAndParksTheServerIdle(t *testing.T) {
	cases := []struct {
		name        string
		waitTimeout time.Duration
		cancel      bool // give up by cancelling the context instead
		want        error
	}{
		{"waiter hits the wait timeout", 10 * time.Millisecond, false, nil},
		{"waiter's context is cancelled", 0, true, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const dialTimeout = time.Minute
			g := newGate(t)
			dialCtx := make(chan context.Context, 1)
			p, d := newTestPool(t, Config[*fakeServer]{Size: 1, WaitTimeout: tc.waitTimeout, DialTimeout: dialTimeout}, func(d *fakeDialer) {
				d.hook = func(ctx context.Context, n int64) error {
					dialCtx <- ctx
					select {
					case <-g.ch:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			results := make(chan result, 1)
			acquireAsync(ctx, p, 0, results)
			dctx := <-dialCtx
			if tc.cancel {
				cancel()
			}
			r := recv(t, results, "the waiter to give up")
			if tc.want != nil && !errors.Is(r.err, tc.want) {
				t.Fatalf("err = %v, want %v", r.err, tc.want)
			}
			var wte *WaitTimeoutError
			if tc.want == nil && !errors.As(r.err, &wte) {
				t.Fatalf("err = %v, want *WaitTimeoutError", r.err)
			}
			if err := dctx.Err(); err != nil {
				t.Fatalf("the dial's context ended (%v) when its waiter gave up; dials must run on the pool's context", err)
			}
			if dl, ok := dctx.Deadline(); !ok || time.Until(dl) < dialTimeout/2 {
				t.Fatalf("dial context deadline = %v, %v; want about DialTimeout from now", dl, ok)
			}
			if st := p.Stats(); st.ServersConnecting != 1 || st.ClientsWaiting != 0 || st.Timeouts != 1 {
				t.Fatalf("after the waiter left: %+v, want the dial still connecting, nobody waiting, Timeouts=1", st)
			}
			g.open()
			st := waitStats(t, p, "the dialled server to be parked", func(st Stats) bool {
				return st.ServersIdle == 1 && st.ServersConnecting == 0
			})
			if st.DialErrors != 0 {
				t.Fatalf("DialErrors = %d, want 0", st.DialErrors)
			}
			l := mustAcquire(t, p)
			if l.Server().id != 1 || d.dials.Load() != 1 {
				t.Fatalf("the next client got %v after %d dials; want the parked server#1 and no new dial", l.Server(), d.dials.Load())
			}
			l.Release()
			assertNoServerLost(t, p, d)
		})
	}
}

func TestClose(t *testing.T) {
	t.Run("fails every waiter with ErrClosed and later acquires too", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
		held := mustAcquire(t, p)
		const waiters = 4
		results := make(chan result, waiters)
		enqueue(t, context.Background(), p, waiters, results)
		p.Close()
		for range waiters {
			r := recv(t, results, "a waiter to be failed")
			if r.lease != nil || !errors.Is(r.err, ErrClosed) {
				t.Fatalf("waiter %d: lease=%v err=%v, want ErrClosed", r.idx, r.lease != nil, r.err)
			}
		}
		if l, err := p.Acquire(context.Background()); l != nil || !errors.Is(err, ErrClosed) {
			t.Fatalf("Acquire after Close = %v, %v; want ErrClosed", l, err)
		}
		if st := p.Stats(); st.ClientsWaiting != 0 || st.ServersActive != 1 {
			t.Fatalf("after Close: %+v; want no waiters and the held server still active", st)
		}
		held.Release()
		assertNoServerLost(t, p, d)
		if d.live.Load() != 0 {
			t.Fatalf("%d servers still live", d.live.Load())
		}
	})

	t.Run("closes idle servers", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Size: 3}, nil)
		ls := []*testLease{mustAcquire(t, p), mustAcquire(t, p), mustAcquire(t, p)}
		for _, l := range ls {
			l.Release()
		}
		if st := p.Stats(); st.ServersIdle != 3 {
			t.Fatalf("ServersIdle = %d before Close, want 3", st.ServersIdle)
		}
		p.Close()
		st := assertNoServerLost(t, p, d)
		if st.ServersIdle != 0 || d.live.Load() != 0 {
			t.Fatalf("after Close: idle=%d live=%d, want 0 and 0", st.ServersIdle, d.live.Load())
		}
		for _, s := range d.all() {
			if s.closed.Load() != 1 {
				t.Fatalf("%v closed %d times, want 1", s, s.closed.Load())
			}
		}
	})

	t.Run("cancels and waits for in-flight dials", func(t *testing.T) {
		cancelled, finish := make(chan struct{}), newGate(t)
		defer finish.open() // the hook ignores cancellation until this opens
		var dialReturned sync.WaitGroup
		dialReturned.Add(1)
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error {
				defer dialReturned.Done()
				<-ctx.Done()
				close(cancelled)
				<-finish.ch // still tearing down after the cancel
				return ctx.Err()
			}
		})
		results := make(chan result, 1)
		enqueue(t, context.Background(), p, 1, results)
		waitStats(t, p, "the dial to start", func(st Stats) bool { return st.ServersConnecting == 1 })
		closed := make(chan struct{})
		go func() { p.Close(); close(closed) }()
		<-cancelled
		r := recv(t, results, "the waiter to be failed")
		if !errors.Is(r.err, ErrClosed) {
			t.Fatalf("waiter err = %v, want ErrClosed", r.err)
		}
		select {
		case <-closed:
			t.Fatal("Close returned while a dial was still running")
		default:
		}
		finish.open()
		<-closed
		dialReturned.Wait() // would hang (and fail the test) if it never returned
		assertNoServerLost(t, p, d)
	})

	t.Run("closes a server whose dial succeeds after Close", func(t *testing.T) {
		g := newGate(t)
		defer g.open() // the hook ignores cancellation until this opens
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error {
				<-g.ch // ignores cancellation, then succeeds anyway
				return nil
			}
		})
		results := make(chan result, 1)
		enqueue(t, context.Background(), p, 1, results)
		closed := make(chan struct{})
		go func() { p.Close(); close(closed) }()
		if r := recv(t, results, "the waiter to be failed"); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("waiter err = %v, want ErrClosed", r.err)
		}
		g.open()
		<-closed
		st := assertNoServerLost(t, p, d)
		if st.ServersIdle != 0 || d.live.Load() != 0 || d.dials.Load() != 1 {
			t.Fatalf("idle=%d live=%d dials=%d; want the late server closed, not parked", st.ServersIdle, d.live.Load(), d.dials.Load())
		}
	})

	t.Run("a lease released after Close closes its server even if reusable", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Size: 2}, nil)
		a, b := mustAcquire(t, p), mustAcquire(t, p)
		b.Server().reusable.Store(false)
		p.Close()
		if d.live.Load() != 2 {
			t.Fatalf("Close closed leased servers: live = %d, want 2", d.live.Load())
		}
		a.Release()
		b.Release()
		a.Release()
		st := assertNoServerLost(t, p, d)
		if st.ServersIdle != 0 || d.live.Load() != 0 {
			t.Fatalf("idle=%d live=%d after releasing into a closed pool, want 0 and 0", st.ServersIdle, d.live.Load())
		}
		if d.dials.Load() != 2 {
			t.Fatalf("a closed pool dialled a replacement: %d dials", d.dials.Load())
		}
	})

	t.Run("is safe to call twice", func(t *testing.T) {
		p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
		mustAcquire(t, p).Release()
		p.Close()
		p.Close()
		assertNoServerLost(t, p, d)
		if s := d.all()[0]; s.closed.Load() != 1 {
			t.Fatalf("%v closed %d times, want 1", s, s.closed.Load())
		}
	})
}

func TestSkippingReleaseLeavesTheServerCountedActiveForever(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Size: 1}, nil)
	leaked := mustAcquire(t, p) // the lease is the only way back; "forget" it

	st := p.Stats()
	if st.ServersActive != 1 || st.ServersIdle != 0 || st.Total() != 1 {
		t.Fatalf("with an unreleased lease: %+v, want ServersActive=1", st)
	}
	if problem := idleProblem(st); !strings.Contains(problem, "ServersActive=1") {
		t.Fatalf("idleProblem = %q; assertIdle must catch a forgotten lease", problem)
	}
	// The slot is gone: nobody else can get a server...
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if l, err := p.Acquire(ctx); l != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, %v; want to wait in vain while the only server is leaked", l, err)
	}
	// ...and Close does not reclaim it either.
	p.Close()
	if st := p.Stats(); st.ServersActive != 1 || d.live.Load() != 1 || leaked.Server().closed.Load() != 0 {
		t.Fatalf("after Close: active=%d live=%d closed=%d; a leased server stays open until released",
			st.ServersActive, d.live.Load(), leaked.Server().closed.Load())
	}
	// Only the lease brings it back.
	leaked.Release()
	assertNoServerLost(t, p, d)
	if d.live.Load() != 0 {
		t.Fatalf("%d servers live after the late release", d.live.Load())
	}
}
