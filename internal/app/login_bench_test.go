//go:build linux

package app_test

import (
	"encoding/binary"
	"log/slog"
	"runtime/metrics"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// A new connection per transaction (issue 14, pgbench -C): each iteration
// is one client's whole life through pgvalve in transaction pooling, as
// libpq lives it under pgbench -S -C: SSLRequest (declined), startup,
// trust login, one select-only query, Terminate, and the read of the
// close. pgvalve logs at info, the default, so the lines it writes per
// client at that level count. The client is raw blocking system calls
// that allocate next to nothing, so allocs/op is pgvalve's own (what a
// client's teardown allocates after its socket closes may land in the
// next iteration); goroutines/op counts those pgvalve starts per client.
// ns/op is only worth comparing within one run. Run with
//
//	go test -run '^$' -bench Login -benchmem ./internal/app -cpuprofile cpu.out
func BenchmarkLogin(b *testing.B) {
	hotAccounts(b)
	s := valvetest.StartAt(b, txnConfig(2), slog.LevelInfo)
	sslRequest := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)
	startup := encode(b, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": cluster.User, "database": pgtest.TestDatabase, "application_name": "pgbench"}})
	txn := encode(b, &pgproto3.Query{String: query + "7;"})
	terminate := encode(b, &pgproto3.Terminate{})
	addr := s.Addr.AddrPort()
	to := &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	buf := make([]byte, 8192)
	login := func() {
		fd := dialBlocking(b, to)
		defer syscall.Close(fd)
		sendBlocking(b, fd, sslRequest)
		if n := recvBlocking(b, fd, buf[:1]); n != 1 || buf[0] != 'N' {
			b.Fatalf("SSLRequest answered %q", buf[:n])
		}
		sendBlocking(b, fd, startup)
		readyBlocking(b, fd, buf)
		sendBlocking(b, fd, txn)
		readyBlocking(b, fd, buf)
		sendBlocking(b, fd, terminate)
		if n := recvBlocking(b, fd, buf); n != 0 {
			b.Fatalf("after Terminate, %q instead of the close", buf[:n])
		}
	}
	login() // warm: the pool has its server, and it knows application_name
	b.ReportAllocs()
	created := goroutinesCreated()
	b.ResetTimer()
	for range b.N {
		login()
	}
	b.StopTimer()
	b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/op")
}

// goroutinesCreated is how many goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// dialBlocking connects a blocking TCP socket to to.
func dialBlocking(b *testing.B, to *syscall.SockaddrInet4) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Connect(fd, to); err != nil {
		syscall.Close(fd)
		b.Fatal(err)
	}
	return fd
}

func sendBlocking(b *testing.B, fd int, msg []byte) {
	if _, err := syscall.Write(fd, msg); err != nil {
		b.Fatal(err)
	}
}

// recvBlocking is one read; 0 is the close.
func recvBlocking(b *testing.B, fd int, buf []byte) int {
	n, err := syscall.Read(fd, buf)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// readyBlocking reads messages up to ReadyForQuery (replies this small fit in
// buf), failing on an ErrorResponse.
func readyBlocking(b *testing.B, fd int, buf []byte) {
	have := 0
	for {
		n := recvBlocking(b, fd, buf[have:])
		if n == 0 {
			b.Fatal("closed before ReadyForQuery")
		}
		have += n
		for at := 0; at+5 <= have; {
			kind, size := buf[at], int(binary.BigEndian.Uint32(buf[at+1:]))+1
			if at+size > have {
				break
			}
			if kind == 'E' {
				b.Fatalf("error response: %q", buf[at:at+size])
			}
			if kind == 'Z' {
				if at+size != have {
					b.Fatalf("%d bytes after ReadyForQuery", have-at-size)
				}
				return
			}
			at += size
		}
	}
}
