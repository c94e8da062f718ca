package app_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// The hot path under load (issue 14): 50 clients through a pool of 20 in
// transaction pooling, each sending pgbench's select-only transaction as
// raw bytes, b.N transactions in all. user-ns/op and sys-ns/op are this
// process's CPU per transaction: pgvalve's, plus the clients' few reads
// and writes, which stay the same from build to build. Unlike a single
// client, 50 keep the runtime from idling between transactions, so the
// figure follows what pgvalve does per transaction. Run with
//
//	go test -run '^$' -bench TransactionsUnderLoad -benchtime 100000x ./internal/app
func BenchmarkTransactionsUnderLoad(b *testing.B) {
	hotAccounts(b)
	s := valvetest.Start(b, txnConfig(20))
	txn := encode(b, &pgproto3.Query{String: query + "7"})
	const clients = 50
	type client struct {
		conn net.Conn
		r    *bufio.Reader
	}
	conns := make([]client, clients)
	for i := range conns {
		c, err := loggedIn(s.Addr.String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = client{c, bufio.NewReaderSize(c, 8192)}
		roundTrip(b, c, conns[i].r, txn) // warm: planned, and the pool full
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	before := cpuNow(b)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for _, c := range conns {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := loadTrip(c.conn, c.r, txn); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.StopTimer()
	user, sys := cpuNow(b).sub(before)
	b.ReportMetric(float64(user.Nanoseconds())/float64(b.N), "user-ns/op")
	b.ReportMetric(float64(sys.Nanoseconds())/float64(b.N), "sys-ns/op")
}

// loadTrip is roundTrip for a client's own goroutine: it returns its
// failure instead of ending the benchmark.
func loadTrip(conn net.Conn, r *bufio.Reader, req []byte) error {
	if _, err := conn.Write(req); err != nil {
		return err
	}
	for {
		head, err := r.Peek(5)
		if err != nil {
			return err
		}
		kind, n := head[0], int(binary.BigEndian.Uint32(head[1:]))+1
		if kind == 'E' {
			return fmt.Errorf("error response to %q", req)
		}
		if _, err := r.Discard(n); err != nil {
			return err
		}
		if kind == 'Z' {
			return nil
		}
	}
}

type cpuTimes struct{ user, sys time.Duration }

func cpuNow(b *testing.B) cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return cpuTimes{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

func (c cpuTimes) sub(d cpuTimes) (user, sys time.Duration) { return c.user - d.user, c.sys - d.sys }
