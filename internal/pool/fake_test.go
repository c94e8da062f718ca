package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually is how long a test waits for something that should happen.
// It is generous on purpose: nothing asserts on how fast the pool is.
const eventually = 10 * time.Second

var errDial = errors.New("fake dial failure")

// fakeServer is an in-memory server connection.
type fakeServer struct {
	id       int64
	host     int // the index of the host it was dialled to
	d        *fakeDialer
	reusable atomic.Bool
	closed   atomic.Int32 // how many times Close was called
	inUse    atomic.Bool  // set by stress tests while a client holds it
}

func (s *fakeServer) Reusable() bool { return s.reusable.Load() }

func (s *fakeServer) Close() error {
	if h := s.d.onClose; h != nil {
		h(s)
	}
	if s.closed.Add(1) == 1 {
		s.d.live.Add(-1)
	}
	return nil
}

func (s *fakeServer) String() string { return fmt.Sprintf("server#%d", s.id) }

// fakeDialer opens fakeServers and counts the live ones (opened and not
// yet closed). Its hooks must be set before the pool is used.
type fakeDialer struct {
	// hook runs at the start of the n-th Dial (1-based); a non-nil error
	// fails that dial. It may block, but must give up when ctx ends so that
	// Pool.Close can finish.
	hook func(ctx context.Context, n int64) error
	// onClose runs at the start of every Close.
	onClose func(s *fakeServer)
	// unreachable, if set, fails every dial to a host for which it holds;
	// hangs makes such a dial wait until its context ends instead.
	unreachable, hangs func(host int) bool

	dials   atomic.Int64 // Dial calls
	live    atomic.Int64 // servers opened and not closed
	maxLive atomic.Int64 // the most live servers ever seen at once

	mu      sync.Mutex
	servers []*fakeServer
}

func (d *fakeDialer) Dial(ctx context.Context, host int) (*fakeServer, error) {
	n := d.dials.Add(1)
	if d.hook != nil {
		if err := d.hook(ctx, n); err != nil {
			return nil, err
		}
	}
	if d.hangs != nil && d.hangs(host) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if d.unreachable != nil && d.unreachable(host) {
		return nil, fmt.Errorf("host %d: %w", host, errDial)
	}
	s := &fakeServer{id: n, host: host, d: d}
	s.reusable.Store(true)
	live := d.live.Add(1)
	for {
		m := d.maxLive.Load()
		if live <= m || d.maxLive.CompareAndSwap(m, live) {
			break
		}
	}
	d.mu.Lock()
	d.servers = append(d.servers, s)
	d.mu.Unlock()
	return s, nil
}

func (d *fakeDialer) all() []*fakeServer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*fakeServer(nil), d.servers...)
}

type testPool = Pool[*fakeServer]
type testLease = Lease[*fakeServer]

// newTestPool returns a pool over a fresh fakeDialer; set the dialer's hooks
// in prep, before the pool can dial. The pool is closed when the test ends.
func newTestPool(t testing.TB, cfg Config[*fakeServer], prep func(d *fakeDialer)) (*testPool, *fakeDialer) {
	t.Helper()
	d := &fakeDialer{}
	if prep != nil {
		prep(d)
	}
	if cfg.Name == "" {
		cfg.Name = "db/user"
	}
	cfg.Dial = d.Dial
	p := New(cfg)
	t.Cleanup(p.Close)
	return p, d
}

// gate is a channel closed once, at the latest when the test's cleanups run.
// The pool's Close cleanup runs first, so a hook blocked on a gate must also
// watch its ctx, or the test must defer g.open().
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t testing.TB) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// poll reports whether cond became true within eventually. (testutil.Eventually
// is for a plain wait; waitStats and the idle check say the last stats.)
func poll(cond func() bool) bool {
	deadline := time.Now().Add(eventually)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitStats waits until the pool's stats satisfy cond.
func waitStats(t testing.TB, p *testPool, what string, cond func(Stats) bool) Stats {
	t.Helper()
	var st Stats
	if !poll(func() bool { st = p.Stats(); return cond(st) }) {
		t.Fatalf("timed out waiting for %s; stats %+v", what, st)
	}
	return st
}

// idleProblem says how st differs from a pool at rest, or "" if it is at rest.
func idleProblem(st Stats) string {
	var bad []string
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ServersActive", st.ServersActive},
		{"ClientsWaiting", st.ClientsWaiting},
		{"ServersConnecting", st.ServersConnecting},
		{"ServersClosing", st.ServersClosing},
	} {
		if f.v != 0 {
			bad = append(bad, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	if st.ServersIdle < 0 {
		bad = append(bad, fmt.Sprintf("ServersIdle=%d", st.ServersIdle))
	}
	if st.Total() > st.Size {
		bad = append(bad, fmt.Sprintf("Total=%d > Size=%d", st.Total(), st.Size))
	}
	return strings.Join(bad, ", ")
}

// assertIdle waits for the pool to come to rest (transient dials may still
// be finishing) and fails the test if it does not.
func assertIdle(t testing.TB, p *testPool) Stats {
	t.Helper()
	var st Stats
	if !poll(func() bool { st = p.Stats(); return idleProblem(st) == "" }) {
		t.Fatalf("pool %q did not come to rest: %s; stats %+v", p.Name(), idleProblem(st), st)
	}
	return st
}

// assertNoServerLost asserts the pool is at rest and every live server is
// one of its idle ones, and that no server was closed twice.
func assertNoServerLost(t testing.TB, p *testPool, d *fakeDialer) Stats {
	t.Helper()
	st := assertIdle(t, p)
	if live := d.live.Load(); live != int64(st.ServersIdle) {
		t.Fatalf("%d servers are live but the pool holds %d idle: a server was lost", live, st.ServersIdle)
	}
	open := 0
	for _, s := range d.all() {
		switch c := s.closed.Load(); {
		case c > 1:
			t.Fatalf("%v was closed %d times", s, c)
		case c == 0:
			open++
		}
	}
	if open != st.ServersIdle {
		t.Fatalf("%d servers are open but the pool holds %d idle", open, st.ServersIdle)
	}
	if m := d.maxLive.Load(); m > int64(st.Size) {
		t.Fatalf("%d servers were live at once, pool size is %d", m, st.Size)
	}
	return st
}

type result struct {
	idx   int
	lease *testLease
	err   error
}

// acquireAsync starts an Acquire in a goroutine and reports on ch.
func acquireAsync(ctx context.Context, p *testPool, idx int, ch chan<- result) {
	go func() {
		l, err := p.Acquire(ctx)
		ch <- result{idx: idx, lease: l, err: err}
	}()
}

// enqueue starts n waiters one at a time, each queued (per Stats) before the
// next starts, so that their queue order is their index order.
func enqueue(t testing.TB, ctx context.Context, p *testPool, n int, ch chan<- result) {
	t.Helper()
	base := p.Stats().ClientsWaiting
	for i := range n {
		acquireAsync(ctx, p, i, ch)
		waitStats(t, p, fmt.Sprintf("waiter %d to queue", i), func(st Stats) bool {
			return st.ClientsWaiting == base+i+1
		})
	}
}

func recv(t testing.TB, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(eventually):
		t.Fatalf("timed out waiting for %s", what)
		return result{}
	}
}

// assertNothingOn fails if ch has a result ready right now.
func assertNothingOn(t testing.TB, ch <-chan result, why string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s, but waiter %d got lease=%v err=%v", why, r.idx, r.lease != nil, r.err)
	default:
	}
}

func mustAcquire(t testing.TB, p *testPool) *testLease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if l == nil {
		t.Fatal("Acquire returned neither a lease nor an error")
	}
	return l
}

// mustAcquirePatiently is mustAcquire for pools with a short WaitTimeout: on a
// loaded machine the first dial can outlast the wait, so it retries wait
// timeouts (the dial still completes and parks its server for the retry).
func mustAcquirePatiently(t testing.TB, p *testPool) *testLease {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		l, err := p.Acquire(context.Background())
		var wte *WaitTimeoutError
		switch {
		case err == nil:
			return l
		case !errors.As(err, &wte):
			t.Fatalf("Acquire: %v", err)
		case time.Now().After(deadline):
			t.Fatalf("Acquire kept timing out: %v", err)
		}
	}
}
