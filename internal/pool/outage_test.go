package pool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

var errRefused = errors.New("fake login refused")

func refused(err error) bool { return errors.Is(err, errRefused) }

func TestARefusedLoginReachesEveryWaiterAtOnce(t *testing.T) {
	release := newGate(t)
	p, _ := newTestPool(t, Config[*fakeServer]{Refused: refused, Settings: Settings{Size: 2}}, func(d *fakeDialer) {
		d.hook = func(ctx context.Context, n int64) error {
			select {
			case <-release.ch:
			case <-ctx.Done():
			}
			return errRefused
		}
	})
	results := make(chan result, 3)
	enqueue(t, context.Background(), p, 3, results)
	release.open()
	for range 3 {
		if r := recv(t, results, "the refusal"); !errors.Is(r.err, errRefused) {
			t.Fatalf("waiter %d got %v, want the server's refusal", r.idx, r.err)
		}
	}
	waitStats(t, p, "the other dial to end", func(st Stats) bool {
		return st.ClientsWaiting == 0 && st.ServersConnecting == 0 && st.Total() == 0
	})
}

func TestAnUnreachableServerKeepsClientsWaitingAndServesThemInOrderWhenItReturns(t *testing.T) {
	var inFlight, maxInFlight atomic.Int32
	var up atomic.Bool
	p, d := newTestPool(t, Config[*fakeServer]{Refused: refused, Settings: Settings{Size: 1, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}},
		func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error {
				n32 := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := maxInFlight.Load(); n32 > m && !maxInFlight.CompareAndSwap(m, n32); m = maxInFlight.Load() {
				}
				if !up.Load() {
					return errDial
				}
				return nil
			}
		})
	results := make(chan result, 4)
	enqueue(t, context.Background(), p, 4, results)
	testutil.Eventually(t, "several failed dials", func() bool { return d.dials.Load() >= 5 })
	assertNothingOn(t, results, "no client fails while the server is only unreachable")
	if st := p.Stats(); st.ClientsWaiting != 4 {
		t.Fatalf("clients must stay queued: %+v", st)
	}
	up.Store(true)
	for want := range 4 {
		r := recv(t, results, "a grant once the server is back")
		if r.err != nil || r.idx != want {
			t.Fatalf("got waiter %d (%v); want waiter %d served in order", r.idx, r.err, want)
		}
		r.lease.Release()
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Fatalf("%d dials ran at once during the outage; one probe at a time is enough", m)
	}
	assertNoServerLost(t, p, d)
}

func TestAWaitThatExpiresWhileTheServerIsDownSaysUnreachable(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 2, WaitTimeout: 200 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond}},
		func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error { return errDial }
		})
	l, err := p.Acquire(context.Background())
	var ue *UnreachableError
	if l != nil || !errors.As(err, &ue) || !errors.Is(err, errDial) || ue.Waited != 200*time.Millisecond {
		t.Fatalf("Acquire = %v, %v; want UnreachableError wrapping the dial error", l, err)
	}
	var wte *WaitTimeoutError
	if errors.As(err, &wte) {
		t.Fatal("an unreachable server must not look like a full pool")
	}
	// Backoff: about one dial per 10-20ms over 200ms, not a tight loop.
	if n := d.dials.Load(); n < 3 || n > 40 {
		t.Fatalf("%d dials in 200ms; want backoff between them", n)
	}
	if st := p.Stats(); st.ClientsWaiting != 0 || st.Timeouts != 1 {
		t.Fatalf("after the wait: %+v", st)
	}
}

func TestADialTimeoutCountsAsUnreachable(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, DialTimeout: 10 * time.Millisecond, WaitTimeout: 150 * time.Millisecond}},
		func(d *fakeDialer) {
			d.hook = func(ctx context.Context, n int64) error {
				<-ctx.Done() // a server that never answers
				return ctx.Err()
			}
		})
	_, err := p.Acquire(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want UnreachableError wrapping the dial's deadline", err)
	}
}

func TestClosingAPoolThatIsBackingOffStopsItsRetries(t *testing.T) {
	p, d := newTestPool(t, Config[*fakeServer]{Settings: Settings{Size: 1, RetryMin: time.Hour, RetryMax: time.Hour}}, func(d *fakeDialer) {
		d.hook = func(ctx context.Context, n int64) error { return errDial }
	})
	results := make(chan result, 1)
	enqueue(t, context.Background(), p, 1, results)
	testutil.Eventually(t, "the first dial to fail", func() bool { return p.Stats().DialErrors == 1 })
	p.Close() // must not wait an hour for the retry timer
	if r := recv(t, results, "ErrClosed"); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("got %v", r.err)
	}
	if d.dials.Load() != 1 {
		t.Fatalf("%d dials; the retry must not run after Close", d.dials.Load())
	}
}
