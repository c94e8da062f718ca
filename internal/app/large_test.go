package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// insertOfSize is an INSERT whose Query message, header included, is
// exactly total bytes.
func insertOfSize(table string, total int) string {
	head := "insert into " + table + " (v) values ('"
	tail := "')"
	pad := total - 5 - 1 - len(head) - len(tail) // type, length, NUL
	return head + strings.Repeat("x", pad) + tail
}

// largeSizes sit on and around the read buffer's edges, and well past it.
func largeSizes() []int {
	b := wire.DefaultBufferSize
	return []int{b - 1, b, b + 1, b + 5, 17 << 10, 2*b + 3, 64 << 10, 1 << 20, 8 << 20}
}

// largeWrite is one way of sending a message of a given size that inserts
// one row.
type largeWrite struct {
	name string
	run  func(ctx context.Context, simple, extended *pgx.Conn, table string, size int) (pgconn.CommandTag, error)
}

var largeWrites = []largeWrite{
	{"simple Query", func(ctx context.Context, simple, _ *pgx.Conn, table string, size int) (pgconn.CommandTag, error) {
		return simple.Exec(ctx, insertOfSize(table, size))
	}},
	{"Parse of a long text", func(ctx context.Context, _, ext *pgx.Conn, table string, size int) (pgconn.CommandTag, error) {
		return ext.Exec(ctx, insertOfSize(table, size)+" returning $1::int", 1)
	}},
	{"Bind of a long value", func(ctx context.Context, _, ext *pgx.Conn, table string, size int) (pgconn.CommandTag, error) {
		return ext.Exec(ctx, "insert into "+table+" (v) values ($1)", strings.Repeat("z", size))
	}},
}

// A simple Query longer than the read buffer used to run on the server and
// then reach the client as 08006 ("server answer does not match"): an app
// that retried inserted the row twice. Every message that inserts a row
// must run exactly once and report INSERT 0 1, whatever its size and form,
// in every pool mode, tracking on and off, and a pooled client's server
// must go back as soon as the answer is in.
func TestAMessageBiggerThanTheBufferRunsOnceAndReportsItsResult(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := testutil.Context(t)
			s, url := m.start(t, 2)
			table := "large_" + strings.ReplaceAll(m.name, " ", "_")
			owner := newTable(t, table, "v text")
			simple, extended := connectSimple(t, url), connectExtended(t, url, m.stmts > 0)
			rows := 0
			for _, w := range largeWrites {
				for _, size := range largeSizes() {
					tag, err := w.run(ctx, simple, extended, table, size)
					if err != nil || tag.String() != "INSERT 0 1" {
						t.Fatalf("%s of %d bytes: tag %q, %v; want INSERT 0 1", w.name, size, tag, err)
					}
					rows++
					var n int
					if err := owner.QueryRow(ctx, "select count(*) from "+table).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n != rows {
						t.Fatalf("after a %s of %d bytes the table has %d rows, want %d", w.name, size, n, rows)
					}
					if m.mode != config.PoolSession {
						s.WaitIdle(t, 10*time.Second)
					}
					for _, c := range []*pgx.Conn{simple, extended} {
						var one int
						if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
							t.Fatalf("after a %s of %d bytes: select 1 = %d, %v", w.name, size, one, err)
						}
					}
				}
			}
		})
	}
}

// PostgreSQL quotes input it cannot parse, so an error can be longer than
// the read buffer; the client gets it whole and goes on.
func TestAnErrorBiggerThanTheBufferReachesTheClientWhole(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.name, func(t *testing.T) {
			ctx := testutil.Context(t)
			s, url := m.start(t, 2)
			for _, conn := range []*pgx.Conn{connectSimple(t, url), connectExtended(t, url, m.stmts > 0)} {
				for _, size := range largeSizes() {
					_, err := conn.Exec(ctx, fmt.Sprintf("select repeat('q', %d)::int", size))
					pgErr := wantCode(t, err, "22P02")
					if !strings.Contains(pgErr.Message, strings.Repeat("q", size)) {
						t.Fatalf("error for %d bytes is cut short: %d bytes of message", size, len(pgErr.Message))
					}
					if m.mode != config.PoolSession {
						s.WaitIdle(t, 10*time.Second)
					}
					var one int
					if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
						t.Fatalf("after an error of %d bytes: select 1 = %d, %v", size, one, err)
					}
				}
			}
		})
	}
}

// The large-message test above can fail: with the statement tracker made
// to skip streamed messages again, the long query's answer is the 08006
// the bug report showed.
func TestTheLargeMessageCheckFailsWhenTheTrackerSkipsStreamedMessages(t *testing.T) {
	cfg := txnConfig(2)
	cfg.SessionState = config.StateOff // a long Query streams through the tracker, as in the report
	s := valvetest.StartWithKnobs(t, cfg, &session.Knobs{SkipStreamedBookkeeping: true})
	conn := connectSimple(t, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	_, err := conn.Exec(testutil.Context(t), "select '"+strings.Repeat("x", 20000)+"'")
	wantCode(t, err, "08006")
}

// The 20,000-character INSERT from the bug report, run as psql -f runs a
// migration script, in transaction pooling; and the same at 1 MB and
// 64 MB.
func TestPsqlFileWithALongInsertSaysInsert01(t *testing.T) {
	cfg := txnConfig(2)
	s, _ := startValve(t, cfg)
	admin := newTable(t, "psql_large", "v text")
	for i, size := range []int{20000, 1 << 20, 64 << 20} {
		t.Run(fmt.Sprintf("%d characters", size), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "migration.sql")
			sql := "insert into psql_large (v) values ('" + strings.Repeat("y", size) + "');\n"
			if err := os.WriteFile(file, []byte(sql), 0o644); err != nil {
				t.Fatal(err)
			}
			conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", s.Port(), cluster.User, pgtest.TestDatabase)
			cmd := exec.Command(cluster.Psql(), "-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", file)
			cmd.Env = []string{"PGPASSWORD=" + cluster.Password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=20"}
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "INSERT 0 1" {
				t.Fatalf("psql -f: %v\n%.300s", err, out)
			}
			var n int
			if err := admin.QueryRow(testutil.Context(t), "select count(*) from psql_large").Scan(&n); err != nil || n != i+1 {
				t.Fatalf("rows = %d, %v; want %d", n, err, i+1)
			}
		})
	}
}

// connectSimple connects with pgx in the simple protocol, as psql,
// node-postgres without parameters and psycopg2 talk.
func connectSimple(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	return connectMode(t, url, pgx.QueryExecModeSimpleProtocol)
}

// connectExtended connects with pgx in the extended protocol: with its
// statement cache (named statements) when pgvalve tracks them, else with
// unnamed statements only, as a transaction pooler without tracking needs.
func connectExtended(t *testing.T, url string, named bool) *pgx.Conn {
	t.Helper()
	if named {
		return connectMode(t, url, pgx.QueryExecModeCacheStatement)
	}
	return connectMode(t, url, pgx.QueryExecModeExec)
}

// dialMode connects to url with pgx's mode; unlike connectMode, a
// client's own goroutine may call it.
func dialMode(ctx context.Context, url string, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	return pgx.ConnectConfig(ctx, cfg)
}

func connectMode(t *testing.T, url string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	conn, err := dialMode(testutil.Context(t), url, mode)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
