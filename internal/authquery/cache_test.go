package authquery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestCache(ttl time.Duration, max int) (*Cache, *clock) {
	clk := &clock{now: time.Unix(1_000_000, 0)}
	c := NewCache(ttl, max)
	c.Now = clk.Now
	return c, clk
}

// counted is a fetch answering with secret (found when not empty) that
// counts its calls.
func counted(n *atomic.Int32, secret string) Fetch {
	return func(context.Context) (auth.Secret, bool, error) {
		n.Add(1)
		if secret == "" {
			return auth.Secret{}, false, nil
		}
		s, err := auth.ParseSecret(secret)
		return s, true, err
	}
}

var alice = Key{Database: "app", AuthUser: "pgvalve_auth", Query: "q", User: "alice"}

func TestAnswersFoundOrNotAreRememberedUntilTheirTimeIsUp(t *testing.T) {
	c, clk := newTestCache(5*time.Second, 100)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		key    Key
		secret string
	}{{"found", alice, "s3cret"}, {"not found", Key{User: "nobody"}, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			for range 3 {
				s, found, err := c.Get(ctx, tc.key, counted(&calls, tc.secret))
				if err != nil || found != (tc.secret != "") || s.Plain != tc.secret {
					t.Fatalf("Get = %+v, %v, %v", s, found, err)
				}
				clk.Add(time.Second)
			}
			if calls.Load() != 1 {
				t.Fatalf("%d queries within the cache time; want 1", calls.Load())
			}
			clk.Add(5 * time.Second)
			if _, _, err := c.Get(ctx, tc.key, counted(&calls, tc.secret)); err != nil || calls.Load() != 2 {
				t.Fatalf("after the cache time: err %v, %d queries; want a second one", err, calls.Load())
			}
		})
	}
}

func TestConcurrentLookupsOfOneUserShareOneQuery(t *testing.T) {
	c, _ := newTestCache(time.Second, 100)
	release := make(chan struct{})
	var calls atomic.Int32
	fetch := func(context.Context) (auth.Secret, bool, error) {
		calls.Add(1)
		<-release
		return auth.Secret{Kind: auth.KindPlain, Plain: "pw"}, true, nil
	}
	const n = 20
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Go(func() {
			s, found, err := c.Get(context.Background(), alice, fetch)
			results <- fmt.Sprintf("%s %v %v", s.Plain, found, err)
		})
	}
	waitFor(t, func() bool { return c.waiting(alice) == n })
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "pw true <nil>" {
			t.Fatalf("a caller got %q", r)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d queries for %d concurrent logins; want 1", calls.Load(), n)
	}
}

func TestAFailedLookupReachesEveryWaiterAndIsNotRemembered(t *testing.T) {
	c, _ := newTestCache(time.Minute, 100)
	down := errors.New("server down")
	release := make(chan struct{})
	var calls atomic.Int32
	fetch := func(context.Context) (auth.Secret, bool, error) {
		calls.Add(1)
		<-release
		return auth.Secret{}, false, down
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { _, _, err := c.Get(context.Background(), alice, fetch); errs <- err })
	}
	waitFor(t, func() bool { return c.waiting(alice) == 2 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, down) {
			t.Fatalf("a waiter got %v; want the lookup's error", err)
		}
	}
	if _, _, err := c.Get(context.Background(), alice, fetch); !errors.Is(err, down) || calls.Load() != 2 {
		t.Fatalf("next login: err %v after %d queries; want the query run again", err, calls.Load())
	}
}

func TestALookupOutlivesACallerThatLeftAndEndsWhenTheLastLeaves(t *testing.T) {
	c, _ := newTestCache(time.Minute, 100)
	release := make(chan struct{})
	fetch := func(ctx context.Context) (auth.Secret, bool, error) {
		select {
		case <-release:
			return auth.Secret{Kind: auth.KindPlain, Plain: "pw"}, true, nil
		case <-ctx.Done():
			return auth.Secret{}, false, ctx.Err()
		}
	}
	// The caller that started the lookup gives up; the other still gets it.
	first, stopFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, _, err := c.Get(first, alice, fetch); firstErr <- err }()
	waitFor(t, func() bool { return c.waiting(alice) == 1 })
	second := make(chan string, 1)
	go func() {
		s, _, err := c.Get(context.Background(), alice, fetch)
		second <- fmt.Sprintf("%s %v", s.Plain, err)
	}()
	waitFor(t, func() bool { return c.waiting(alice) == 2 })
	stopFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left got %v", err)
	}
	close(release)
	if got := <-second; got != "pw <nil>" {
		t.Fatalf("the caller still waiting got %q", got)
	}

	// Once every caller has left, the lookup is cancelled.
	lone, stopLone := context.WithCancel(context.Background())
	done := make(chan struct{})
	bob := Key{User: "bob"}
	cancelled := make(chan struct{})
	hangs := func(ctx context.Context) (auth.Secret, bool, error) {
		<-ctx.Done()
		close(cancelled)
		return auth.Secret{}, false, ctx.Err()
	}
	go func() { _, _, _ = c.Get(lone, bob, hangs); close(done) }()
	waitFor(t, func() bool { return c.waiting(bob) == 1 })
	stopLone()
	<-done
	<-cancelled
}

func TestTheCacheKeepsAtMostMaxAnswersDroppingExpiredOnesFirst(t *testing.T) {
	c, clk := newTestCache(5*time.Second, 3)
	var calls atomic.Int32
	get := func(user string) {
		if _, _, err := c.Get(context.Background(), Key{User: user}, counted(&calls, "pw")); err != nil {
			t.Fatal(err)
		}
	}
	get("old")
	clk.Add(6 * time.Second) // "old" has expired
	get("a")
	get("b")
	get("c") // full: "old" goes
	if c.Len() != 3 {
		t.Fatalf("%d entries; want at most 3", c.Len())
	}
	n := calls.Load()
	get("a")
	get("b")
	get("c")
	if calls.Load() != n {
		t.Fatal("a fresh answer was dropped while an expired one was there to drop")
	}
	for i := range 10 {
		get(fmt.Sprint("u", i))
		if c.Len() > 3 {
			t.Fatalf("%d entries; want at most 3", c.Len())
		}
	}
}

// waiting is how many callers wait for key's lookup in flight.
func (c *Cache) waiting(key Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.entries[key]; ok && !l.finished() {
		return l.waiters
	}
	return 0
}

// waitFor polls cond: a state other goroutines reach, not a time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 5000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition never held")
}
