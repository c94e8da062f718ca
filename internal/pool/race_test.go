package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolNeverHoldsMoreThanSizeServersUnderConcurrentChurn(t *testing.T) {
	const clients, cycles = 50, 200
	cases := []struct {
		name string
		size int
	}{
		{"pool of one", 1},
		{"pool of six", 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Failed dials put the pool into backoff; keep it short here.
			cfg := Config[*fakeServer]{Settings: Settings{Size: tc.size, RetryMin: time.Microsecond, RetryMax: 100 * time.Microsecond}}
			p, d := newTestPool(t, cfg, func(d *fakeDialer) {
				d.hook = func(ctx context.Context, n int64) error {
					switch rand.IntN(20) {
					case 0:
						return errDial
					case 1, 2:
						runtime.Gosched() // a slower dial
					}
					if live := d.live.Load(); live >= int64(tc.size) {
						// Checked again after the dial in maxLive; this
						// catches a dial started while the pool was full.
						return fmt.Errorf("dial started with %d servers live, size %d", live, tc.size)
					}
					return nil
				}
			})

			// A sampler checks the pool's own view of its size throughout.
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					st := p.Stats()
					if st.Total() > tc.size || st.ServersActive < 0 || st.ServersIdle < 0 ||
						st.ServersConnecting < 0 || st.ServersClosing < 0 || st.ClientsWaiting < 0 {
						t.Errorf("inconsistent stats under load: %+v", st)
						return
					}
					if live := d.live.Load(); live > int64(tc.size) {
						t.Errorf("%d servers live, size %d", live, tc.size)
						return
					}
					runtime.Gosched()
				}
			})

			var granted, cancelled, dialFailed atomic.Int64
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for range cycles {
						ctx, cancel := context.Background(), context.CancelFunc(func() {})
						if rand.IntN(4) == 0 {
							ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(200))*time.Microsecond)
						}
						l, err := p.Acquire(ctx)
						cancel()
						switch {
						case err == nil:
						case errors.Is(err, context.DeadlineExceeded):
							cancelled.Add(1)
							continue
						case errors.Is(err, errDial):
							dialFailed.Add(1)
							continue
						default:
							t.Errorf("Acquire: unexpected error %v", err)
							return
						}
						granted.Add(1)
						s := l.Server()
						if !s.inUse.CompareAndSwap(false, true) {
							t.Errorf("%v was leased to two clients at once", s)
							return
						}
						if s.closed.Load() != 0 {
							t.Errorf("leased %v after it was closed", s)
						}
						if rand.IntN(4) == 0 {
							runtime.Gosched() // hold it a little
						}
						if rand.IntN(3) == 0 {
							s.reusable.Store(false)
						}
						s.inUse.Store(false)
						l.Release()
						if rand.IntN(10) == 0 {
							l.Release() // stray double release under load
						}
					}
				})
			}
			wg.Wait()
			close(stop)
			sampler.Wait()

			if m := d.maxLive.Load(); m > int64(tc.size) {
				t.Fatalf("%d servers were live at once, size %d", m, tc.size)
			}
			st := assertNoServerLost(t, p, d)
			if st.Acquires != granted.Load() {
				t.Fatalf("Acquires = %d but clients got %d leases", st.Acquires, granted.Load())
			}
			if total := granted.Load() + cancelled.Load() + dialFailed.Load(); total != clients*cycles {
				t.Fatalf("accounted for %d acquires, want %d", total, clients*cycles)
			}
			t.Logf("granted=%d cancelled=%d dialFailed=%d dials=%d stats=%+v",
				granted.Load(), cancelled.Load(), dialFailed.Load(), d.dials.Load(), st)

			p.Close()
			if live := d.live.Load(); live != 0 {
				t.Fatalf("%d servers live after Close", live)
			}
			for _, s := range d.all() {
				if c := s.closed.Load(); c != 1 {
					t.Fatalf("%v closed %d times, want exactly once", s, c)
				}
			}
		})
	}
}

func TestAGrantRacingTheWaitTimeoutNeverLosesAServer(t *testing.T) {
	const size, clients, iterations = 2, 8, 300
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: size, WaitTimeout: time.Millisecond}}, nil)
	var granted, timedOut atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range iterations {
				l, err := p.Acquire(context.Background())
				if err != nil {
					var wte *WaitTimeoutError
					if !errors.As(err, &wte) {
						t.Errorf("Acquire: %v, want only wait timeouts", err)
						return
					}
					timedOut.Add(1)
					continue
				}
				granted.Add(1)
				s := l.Server()
				if !s.inUse.CompareAndSwap(false, true) {
					t.Errorf("%v was leased to two clients at once", s)
					return
				}
				// Hold it for about the wait timeout, so releases keep
				// landing just as other waiters give up.
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				if rand.IntN(5) == 0 {
					s.reusable.Store(false)
				}
				s.inUse.Store(false)
				l.Release()
			}
		})
	}
	wg.Wait()
	st := assertNoServerLost(t, p, d)
	if st.Acquires != granted.Load() {
		t.Fatalf("Acquires = %d but clients got %d leases", st.Acquires, granted.Load())
	}
	if granted.Load() == 0 || timedOut.Load() == 0 {
		t.Fatalf("granted=%d timedOut=%d: the test did not exercise the race", granted.Load(), timedOut.Load())
	}
	t.Logf("granted=%d timedOut=%d Timeouts=%d dials=%d", granted.Load(), timedOut.Load(), st.Timeouts, d.dials.Load())
}

// raceCtx is a context that is already done and, the first time Acquire
// asks it why, runs a hook. Acquire asks (via context.Cause) after choosing
// the ctx.Done branch but before leaving the queue, so the hook can grant
// the waiter a server at exactly the moment it gives up.
type raceCtx struct {
	context.Context
	done chan struct{}
	once sync.Once
	hook func()
}

func newRaceCtx(hook func()) *raceCtx {
	c := &raceCtx{Context: context.Background(), done: make(chan struct{}), hook: hook}
	close(c.done)
	return c
}

func (c *raceCtx) Done() <-chan struct{} { return c.done }

func (c *raceCtx) Err() error {
	c.once.Do(c.hook)
	return context.Canceled
}

func TestAGrantArrivingAsTheWaiterGivesUpGoesBackToThePool(t *testing.T) {
	cases := []struct {
		name     string
		reusable bool
	}{
		{"reusable server is parked idle", true},
		{"unreusable server is closed and replaced", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
			held := mustAcquire(t, p)
			held.Server().reusable.Store(tc.reusable)
			var during Stats
			ctx := newRaceCtx(func() {
				// The waiter is still queued: this release grants it the server.
				held.Release()
				during = p.Stats()
			})
			l, err := p.Acquire(ctx)
			if l != nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("Acquire = %v, %v; want the context's error", l, err)
			}
			if tc.reusable && (during.ServersActive != 1 || during.ClientsWaiting != 0) {
				t.Fatalf("the hook did not grant the waiter: stats during the race %+v", during)
			}
			st := assertNoServerLost(t, p, d)
			// Either way one server ends up idle: the returned one, or the
			// replacement dialled for the waiter after the dirty one closed.
			if st.ServersIdle != 1 {
				t.Fatalf("ServersIdle = %d, want 1", st.ServersIdle)
			}
			if c := held.Server().closed.Load(); (c == 1) == tc.reusable {
				t.Fatalf("returned server closed %d times (reusable=%v)", c, tc.reusable)
			}
			if st.Acquires != 1 {
				t.Fatalf("Acquires = %d, want 1: the abandoned grant is not a lease", st.Acquires)
			}
			next := mustAcquire(t, p)
			if tc.reusable && next.Server() != held.Server() {
				t.Fatalf("the next client got %v, want the returned %v", next.Server(), held.Server())
			}
			if !tc.reusable && next.Server() == held.Server() {
				t.Fatalf("the next client got the closed %v", next.Server())
			}
			next.Release()
			assertNoServerLost(t, p, d)
		})
	}
}

func TestAWaiterThatGivesUpAsAGrantArrivesIsCountedAsATimeout(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1}}, nil)
	held := mustAcquire(t, p)
	before := p.Stats()
	_, err := p.Acquire(newRaceCtx(held.Release))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	after := p.Stats()
	// Stats documents Timeouts as "waits that gave up (timeout or cancel)";
	// this client waited and gave up, and got the cancel error.
	if after.Timeouts != before.Timeouts+1 {
		t.Fatalf("Timeouts went %d -> %d for a client that gave up with %v; want +1",
			before.Timeouts, after.Timeouts, err)
	}
}
