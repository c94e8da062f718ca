//go:build linux

package relaylab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/relaylab"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

// The relay is transparent, so clients log in to PostgreSQL itself: trust
// keeps pgbench's logins out of the measurement.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, &cluster, pgtest.Options{
		Settings: map[string]string{"max_connections": "300"},
		HBA:      []string{"host all " + pgtest.TestUser + " 127.0.0.1/32 trust"},
	}))
}

// variants are the designs every behaviour test runs through.
var variants = []struct {
	name string
	opts relaylab.Options
}{
	{"goroutines", relaylab.Options{Design: relaylab.Goroutines}},
	{"eventloop/edge/loops=1", relaylab.Options{Design: relaylab.EventLoop, Loops: 1, Trigger: relaylab.Edge}},
	{"eventloop/edge/loops=2", relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Trigger: relaylab.Edge}},
	{"eventloop/level/loops=2", relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Trigger: relaylab.Level}},
	{"eventloop/edge/loops=2/spin=20", relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Spin: 20}},
	{"eventloop/edge/loops=2/unlocked", relaylab.Options{Design: relaylab.EventLoop, Loops: 2, Unlocked: true}},
}

func upstream() string { return net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)) }

func startRelay(tb testing.TB, opts relaylab.Options) *relaylab.Relay {
	tb.Helper()
	opts.Upstream = upstream()
	if opts.Design == relaylab.Pooled {
		opts.URL = cluster.UserURL()
	}
	r, err := relaylab.Start(opts)
	if err != nil {
		tb.Fatalf("start relay: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func connectTo(t *testing.T, port int) *pgx.Conn {
	t.Helper()
	url := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", cluster.User, port, cluster.Database)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect to port %d: %v", port, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func through(t *testing.T, r *relaylab.Relay) *pgx.Conn { return connectTo(t, r.Addr().Port) }

func TestQueriesRunThroughEachDesign(t *testing.T) {
	ctx := context.Background()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conn := through(t, startRelay(t, v.opts))
			var sum int
			if err := conn.QueryRow(ctx, "SELECT 40 + 2").Scan(&sum); err != nil || sum != 42 {
				t.Fatalf("SELECT 40 + 2 = %d, %v", sum, err)
			}
			var text string
			if err := conn.QueryRow(ctx, "SELECT $1::text || '!'", "relayed").Scan(&text); err != nil || text != "relayed!" {
				t.Fatalf("extended query returned %q, %v", text, err)
			}
			_, err := conn.Exec(ctx, "SELECT 1/0")
			if err == nil || !strings.Contains(err.Error(), "division by zero") {
				t.Fatalf("SELECT 1/0 returned %v, want PostgreSQL's error", err)
			}
		})
	}
}

// copyOut is the bytes of a COPY TO STDOUT several times the relays'
// buffers.
func copyOut(t *testing.T, conn *pgx.Conn) []byte {
	t.Helper()
	var buf bytes.Buffer
	const q = "COPY (SELECT i, md5(i::text) FROM generate_series(1, 100000) i) TO STDOUT"
	if _, err := conn.PgConn().CopyTo(context.Background(), &buf, q); err != nil {
		t.Fatalf("copy out: %v", err)
	}
	return buf.Bytes()
}

func TestACopyOutArrivesByteForByteAsFromPostgreSQL(t *testing.T) {
	want := sha256.Sum256(copyOut(t, connectTo(t, cluster.Port)))
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			got := copyOut(t, through(t, startRelay(t, v.opts)))
			if sha256.Sum256(got) != want {
				t.Fatalf("COPY through the relay (%d bytes) differs from the direct one", len(got))
			}
		})
	}
}

func TestALargeCopyInArrivesWhole(t *testing.T) {
	ctx := context.Background()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conn := through(t, startRelay(t, v.opts))
			if _, err := conn.Exec(ctx, "CREATE TEMP TABLE sink (n int, s text)"); err != nil {
				t.Fatal(err)
			}
			const rows = 100000
			n, err := conn.CopyFrom(ctx, pgx.Identifier{"sink"}, []string{"n", "s"},
				pgx.CopyFromSlice(rows, func(i int) ([]any, error) { return []any{i, strings.Repeat("y", 50)}, nil }))
			if err != nil || n != rows {
				t.Fatalf("copy in: %d rows, %v", n, err)
			}
			var count, sum int64
			if err := conn.QueryRow(ctx, "SELECT count(*), sum(n) FROM sink").Scan(&count, &sum); err != nil {
				t.Fatal(err)
			}
			if count != rows || sum != rows*(rows-1)/2 {
				t.Fatalf("sink holds %d rows summing to %d", count, sum)
			}
		})
	}
}

// A client that stops reading for a while makes the relay hold what it
// cannot write (the event loop's pending buffer and output wait).
func TestALargeResultReachesAClientThatPausesWhole(t *testing.T) {
	ctx := context.Background()
	const rows, width = 20, 1 << 20
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conn := through(t, startRelay(t, v.opts))
			res, err := conn.Query(ctx, "SELECT i, repeat(chr(64 + i), $1) FROM generate_series(1, $2) i", width, rows)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for res.Next() {
				if got == 0 {
					time.Sleep(200 * time.Millisecond) // let every buffer on the way fill up
				}
				var i int
				var s string
				if err := res.Scan(&i, &s); err != nil {
					t.Fatal(err)
				}
				if len(s) != width || strings.Trim(s, string(rune(64+i))) != "" {
					t.Fatalf("row %d: %d bytes, not %d of %q", i, len(s), width, rune(64+i))
				}
				got++
			}
			if err := res.Err(); err != nil || got != rows {
				t.Fatalf("%d rows of %d, %v", got, rows, err)
			}
		})
	}
}

func backendPID(t *testing.T, conn *pgx.Conn) uint32 {
	t.Helper()
	var pid uint32
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitBackendGone polls pg_stat_activity directly until pid has left.
func waitBackendGone(t *testing.T, admin *pgx.Conn, pid uint32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatalf("backend %d is still there", pid)
}

func TestAClientThatDisconnectsWithoutGoodbyeClosesItsUpstream(t *testing.T) {
	admin := connectTo(t, cluster.Port)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conn := through(t, startRelay(t, v.opts))
			pid := backendPID(t, conn)
			conn.PgConn().Conn().Close() // no Terminate: only the relay can tell PostgreSQL
			waitBackendGone(t, admin, pid)
		})
	}
}

func TestAServerThatLeavesClosesItsClient(t *testing.T) {
	ctx := context.Background()
	admin := connectTo(t, cluster.Port)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conn := through(t, startRelay(t, v.opts))
			pid := backendPID(t, conn)
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
			waitBackendGone(t, admin, pid)
			if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
				t.Fatal("a query on a terminated backend succeeded")
			}
		})
	}
}

func TestCloseEndsEveryGoroutineAndConnection(t *testing.T) {
	admin := connectTo(t, cluster.Port)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			r := startRelay(t, v.opts)
			var pids []uint32
			for range 3 {
				pids = append(pids, backendPID(t, through(t, r)))
			}
			if err := r.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			goleak.VerifyNone(t, before)
			for _, pid := range pids {
				waitBackendGone(t, admin, pid)
			}
			if _, err := net.Dial("tcp", r.Addr().String()); err == nil {
				t.Fatal("the relay still accepts after Close")
			}
		})
	}
}
