package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

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
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: tc.size}}, func(d *fakeDialer) {
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
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, WaitTimeout: tc.waitTimeout, DialTimeout: dialTimeout}}, func(d *fakeDialer) {
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 3}}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, func(d *fakeDialer) {
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, func(d *fakeDialer) {
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2}}, nil)
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
		p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
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
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
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
