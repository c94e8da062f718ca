package app_test

import (
	"context"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/admission"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// floodSize is how many silent sockets the flood keeps dialling: 2,000 in
// make test, $PGVALVE_FLOOD (10000 for RELIABILITY.md) when set, fewer
// where the descriptor limit would not hold both their ends.
func floodSize() int {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("PGVALVE_FLOOD")); err == nil && v > 0 {
		n = v
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return min(n, 400)
	}
	return int(min(int64(n), (int64(lim.Cur)-1000)/2))
}

// loginTimes logs in n times from workers clients at once (connect, one
// query, close) and returns each login's time, sorted.
func loginTimes(t *testing.T, url string, workers, n int) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range n / workers {
				start := time.Now()
				c, err := pgx.Connect(testutil.Context(t), url)
				if err == nil {
					_, err = c.Exec(testutil.Context(t), "select 1")
					c.Close(context.Background())
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				out = append(out, time.Since(start))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a real client's login: %v", err)
	}
	slices.Sort(out)
	return out
}

func p99(d []time.Duration) time.Duration { return d[len(d)*99/100] }

// flood dials size silent sockets to addr, and trickle sockets that send
// an SSLRequest one byte a second, and keeps each open until pgvalve
// closes it or ctx ends; it returns once every socket is closed.
func flood(ctx context.Context, addr string, size, trickle int, dialled *atomic.Int64) {
	var wg sync.WaitGroup
	for i := range size + trickle {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			dialled.Add(1)
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			defer stop()
			defer c.Close()
			if i >= size {
				for _, b := range []byte{0, 0, 0, 8, 4, 210, 22, 47} {
					if _, err := c.Write([]byte{b}); err != nil || !sleepCtx(ctx, time.Second) {
						return
					}
				}
			}
			var buf [64]byte
			for {
				if _, err := c.Read(buf[:]); err != nil {
					return // shed by pgvalve, or the flood ended
				}
			}
		})
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(fds)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A flood of sockets that send nothing, and some that trickle a byte a
// second, does not lock real clients out: connections still logging in
// are bounded apart from max_client_conn, and the oldest gives way to a
// new one. Real clients keep logging in while it lasts; afterwards no
// login is left in progress, and descriptors and memory come back. The
// login times (p99 with and without the flood) are logged for
// RELIABILITY.md, not asserted.
func TestAFloodOfSilentSocketsDoesNotLockRealClientsOut(t *testing.T) {
	cfg := txnConfig(4)
	cfg.MaxClientConn = 50
	s, url := startValve(t, cfg)
	const workers, logins = 4, 200
	loginTimes(t, url, workers, 20) // warm: the pool's first server, the greeting cache
	fdsBefore, heapBefore := openFDs(t), heapInUse()
	quiet := loginTimes(t, url, workers, logins)

	size := floodSize()
	ctx, stop := context.WithCancel(context.Background())
	var dialled atomic.Int64
	done := make(chan struct{})
	go func() { flood(ctx, s.Addr.String(), size, 100, &dialled); close(done) }()
	testutil.EventuallyWithin(t, time.Minute, "the flood to reach its size", func() bool { return dialled.Load() >= int64(size) })
	time.Sleep(2 * admission.Grace) // the flood's sockets are silent now, not new
	loud := loginTimes(t, url, workers, logins)
	counts := s.App.Admission()
	stop()
	<-done

	t.Logf("FLOOD: %d silent + 100 trickling sockets (%d dialled in all, %d shed); real clients' login p99 %s quiet, %s under the flood (%.1fx); median %s and %s",
		size, dialled.Load(), counts.Shed, p99(quiet), p99(loud), float64(p99(loud))/float64(p99(quiet)), quiet[len(quiet)/2], loud[len(loud)/2])
	if counts.Logins > 2*cfg.MaxLoginConn {
		t.Errorf("%d logins in progress, over twice max_login_conn %d", counts.Logins, cfg.MaxLoginConn)
	}
	if counts.Shed == 0 {
		t.Error("no silent socket was shed to make room for the real clients")
	}
	testutil.Eventually(t, "no login left in progress", func() bool { return s.App.Admission().Logins == 0 })
	testutil.Eventually(t, "the descriptors to come back", func() bool { return openFDs(t) <= fdsBefore+20 })
	if heap := heapInUse(); heap > heapBefore+64<<20 {
		t.Errorf("heap in use %d MiB after the flood, %d MiB before", heap>>20, heapBefore>>20)
	}
}
