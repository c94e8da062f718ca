package app_test

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

var (
	idleClients = flag.Int("idle.clients", 2000, "logged-in idle clients BenchmarkIdleClientMemory holds")
	idleQuery   = flag.Bool("idle.query", false, "BenchmarkIdleClientMemory's clients run a query and a prepared statement before they go idle")
	idleHeap    = flag.String("idle.heap", "", "BenchmarkIdleClientMemory writes a heap profile here while its clients are idle")
)

// What an idle logged-in client costs pgvalve (issue 14's goal: at most
// 4 KiB each): the growth of the Go heap and goroutine stacks in use, and
// of goroutines, divided by the clients holding a connection, each logged
// in and idle between transactions (both ends live in this process, so
// with a 20,000 file limit 9,000 is about the most). The clients' own few
// hundred bytes each are counted too: the figure is an upper bound. Run
// with
//
//	go test -run '^$' -bench IdleClientMemory -benchtime 1x ./internal/app -args -idle.clients 9000
//
// A client that never sent anything keeps less than one that did (its
// statement tracker and session state are made by its first batch); add
// -idle.query to have each run a simple query and prepare, bind and run
// a named statement before it goes idle; -idle.heap FILE (with
// -test.memprofilerate 1 to see every allocation) to see what they hold.
func BenchmarkIdleClientMemory(b *testing.B) {
	cfg := txnConfig(2)
	cfg.MaxClientConn = *idleClients + 10
	cfg.ClientParkDelay = 20 * time.Millisecond
	s := valvetest.Start(b, cfg)
	for range b.N {
		before, goroutines := memInUse(), runtime.NumGoroutine()
		conns := make([]net.Conn, 0, *idleClients)
		for i := range *idleClients {
			c, err := loggedIn(s.Addr.String())
			if err == nil && *idleQuery {
				err = runQueries(c)
			}
			if err != nil {
				b.Fatalf("client %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		time.Sleep(time.Second) // parked
		after, grown := memInUse(), runtime.NumGoroutine()-goroutines
		if *idleHeap != "" {
			writeHeapProfile(b, *idleHeap)
		}
		n := float64(len(conns))
		b.ReportMetric(float64(after.total()-before.total())/n, "B/client")
		b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/client")
		b.ReportMetric(float64(after.stack-before.stack)/n, "stack-B/client")
		b.ReportMetric(float64(grown)/float64(len(conns)), "goroutines/client")
		for _, c := range conns {
			c.Close()
		}
		s.WaitIdle(b, 30*time.Second)
	}
}

// writeHeapProfile writes what the heap holds now to path, for go tool
// pprof -sample_index inuse_space (the heap profile's rate is the
// runtime's default unless the test sets -memprofilerate).
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// inUse is the Go heap and goroutine stack memory in use.
type inUse struct{ heap, stack uint64 }

func (u inUse) total() uint64 { return u.heap + u.stack }

// memInUse reads the memory in use after a collection.
func memInUse() inUse {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return inUse{heap: m.HeapInuse, stack: m.StackInuse}
}

// runQueries runs a simple query, then prepares, binds and runs a named
// statement, on a logged-in connection c.
func runQueries(c net.Conn) error {
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.Query{String: "select 1"})
	fe.Send(&pgproto3.Parse{Name: "s1", Query: "select $1::int"})
	fe.Send(&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for ready := 0; ready < 2; {
		msg, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("%s %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	return nil
}

// loggedIn is a raw connection to addr that has logged in (trust) and
// read its ReadyForQuery.
func loggedIn(addr string) (net.Conn, error) {
	return testutil.RawLogin(addr, cluster.User, pgtest.TestDatabase)
}
