package testutil

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
)

// RawLogin is a raw connection to addr that has logged in as user to
// database (a server that trusts it) and read its ReadyForQuery.
func RawLogin(addr, user, database string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": database}})
	if err := fe.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		msg, err := fe.Receive()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("login: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			c.Close()
			return nil, fmt.Errorf("login refused: %s %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			_ = c.SetReadDeadline(time.Time{})
			return c, nil
		}
	}
}

// LoadQuery is the transaction the load benchmarks send: one that needs
// no table, so that every benchmark's server does the same work.
const LoadQuery = "SELECT 7"

// BenchUnderLoad runs b.N transactions of req over conns (see
// UnderLoad), after one on each to warm them, and reports this process's
// CPU per transaction as user-ns/op and sys-ns/op.
func BenchUnderLoad(b *testing.B, conns []net.Conn, req []byte) {
	b.Helper()
	if _, _, err := UnderLoad(conns, req, len(conns)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	user, sys, err := UnderLoad(conns, req, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(user.Nanoseconds())/float64(b.N), "user-ns/op")
	b.ReportMetric(float64(sys.Nanoseconds())/float64(b.N), "sys-ns/op")
}

// UnderLoad runs n transactions in all over conns, one goroutine each,
// every one sending req and reading its answers up to ReadyForQuery, and
// returns this process's CPU time (user, system) over the run: the
// pooler's when it runs in this process, plus the clients' reads and
// writes, which stay the same from pooler to pooler. An ErrorResponse
// fails the run.
func UnderLoad(conns []net.Conn, req []byte, n int) (user, sys time.Duration, err error) {
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, len(conns))
	u0, s0, err := cpuTime()
	if err != nil {
		return 0, 0, err
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			r := bufio.NewReaderSize(c, 8192)
			for left.Add(-1) >= 0 {
				if err := RoundTrip(c, r, req); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	u1, s1, err := cpuTime()
	close(errs)
	if first := <-errs; first != nil {
		return 0, 0, first
	}
	return u1 - u0, s1 - s0, err
}

// RoundTrip sends req on conn and reads the answers from r (a reader of
// conn) up to ReadyForQuery; an ErrorResponse is a failure. It allocates
// nothing when it succeeds.
func RoundTrip(conn net.Conn, r *bufio.Reader, req []byte) error {
	if _, err := conn.Write(req); err != nil {
		return err
	}
	for {
		head, err := r.Peek(5)
		if err != nil {
			return err
		}
		kind, size := head[0], int(binary.BigEndian.Uint32(head[1:]))+1
		if kind == 'E' {
			body, _ := r.Peek(min(size, r.Buffered()))
			return fmt.Errorf("error response to %q: %q", req, body)
		}
		if _, err := r.Discard(size); err != nil {
			return err
		}
		if kind == 'Z' {
			return nil
		}
	}
}

// cpuTime is this process's CPU time so far.
func cpuTime() (user, sys time.Duration, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), nil
}
