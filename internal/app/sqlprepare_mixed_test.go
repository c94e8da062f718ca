package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// serverStep is one exchange of a conversation over two servers, both
// held by holders between steps: free lets holder free's server go
// before it (-1: none), take makes holder take one back after it, so
// the client runs on the server that holder let go.
type serverStep struct {
	ex         exchange
	free, take int
}

// on runs ex on the server of holder k.
func on(k int, ex exchange) serverStep { return serverStep{ex, k, k} }

// sameAsPostgresAcrossServers holds steps on a dedicated PostgreSQL
// connection, then through pgvalve in each mode over two servers that
// two other clients hold between steps, and compares the transcripts.
func sameAsPostgresAcrossServers(t *testing.T, modes []poolModeCase, setup string, steps []serverStep) {
	t.Helper()
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	runSetup(t, owner, setup)
	direct := dialWire(t, owner)
	var want []string
	for _, st := range steps {
		want = append(want, converse(direct, []exchange{st.ex}))
	}
	_ = direct.nc.Close()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, url := m.start(t, 2)
			runSetup(t, owner, setup)
			conn := dialWire(t, url)
			h := []*holder{{c: testutil.Connect(t, url).PgConn()}, {c: testutil.Connect(t, url).PgConn()}}
			h[0].begin(t)
			h[1].begin(t)
			for i, st := range steps {
				if st.free >= 0 {
					h[st.free].commit(t)
				}
				if got := converse(conn, []exchange{st.ex}); got != want[i] {
					t.Fatalf("step %d through pgvalve:\n  %s\nPostgreSQL itself:\n  %s", i, got, want[i])
				}
				if st.take >= 0 {
					h[st.take].begin(t)
				}
			}
			h[0].commit(t)
			h[1].commit(t)
			conn.send(&pgproto3.Terminate{})
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

// pgxExec sends sql as pgx's exec mode does: Parse of the unnamed
// statement, Bind, Describe of the portal, Execute, Sync.
func pgxExec(sql string) exchange {
	return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
}

func simpleQuery(sql string) exchange {
	return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, ready: 1}
}

// TestSQLPrepareAcrossProtocolsGetsPostgresAnswers mixes SQL PREPARE,
// EXECUTE and DEALLOCATE sent as simple queries and through Parse, Bind
// and Execute, each run on either of two servers, and gets PostgreSQL's
// answers.
func TestSQLPrepareAcrossProtocolsGetsPostgresAnswers(t *testing.T) {
	x, q := pgxExec, simpleQuery
	parseS := func(name, sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: sql},
			&pgproto3.Describe{ObjectType: 'S', Name: name}, &pgproto3.Sync{}}, ready: 1}
	}
	run := func(name string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	pipe := func(sqls ...string) exchange {
		var msgs []pgproto3.FrontendMessage
		for _, sql := range sqls {
			msgs = append(msgs, &pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{})
		}
		return exchange{send: append(msgs, &pgproto3.Sync{}), ready: 1}
	}
	dropNamed := func(name, sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: sql},
			&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	bindRun := func(name string, params ...string) exchange {
		var vals [][]byte
		for _, p := range params {
			vals = append(vals, []byte(p))
		}
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name, Parameters: vals},
			&pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	modes := []poolModeCase{
		{"transaction", config.PoolTransaction, 200},
		{"transaction with a cache of one", config.PoolTransaction, 1},
	}
	sameAsPostgresAcrossServers(t, modes, "DROP TABLE IF EXISTS xct", []serverStep{
		on(0, q("PREPARE a AS SELECT 42")), on(1, x("EXECUTE a")), on(0, x("execute A")),
		on(1, x("PREPARE b(int) AS SELECT $1 * 2")), on(0, q("EXECUTE b(21)")), on(1, x("EXECUTE b(4)")),
		on(0, x("EXECUTE b(5)")), on(0, x("EXECUTE b")), on(1, x("EXECUTE b('x')")),
		on(0, x("PREPARE c AS SELECT 'c'")), on(1, q("EXECUTE c")), on(1, x("EXPLAIN (COSTS OFF) EXECUTE c")),
		on(0, x("explain execute a")), on(1, x("EXECUTE nope")), on(0, x("DEALLOCATE nope")),
		on(1, x("PREPARE a AS SELECT 1")), on(0, x("PREPARE c AS SELECT 1; SELECT 2")),
		on(0, parseS("s", "EXECUTE c")), on(1, run("s")), on(0, run("s")),
		on(1, parseS("u", "EXECUTE nope")), on(0, run("u")),
		on(1, x("CREATE TABLE xct AS EXECUTE a")), on(0, q("SELECT * FROM xct")), on(1, q("DROP TABLE xct")),
		on(0, x("DEALLOCATE a")), on(1, x("EXECUTE a")), on(0, q("EXECUTE a")), on(1, q("PREPARE a AS SELECT 7")),
		on(0, x("EXECUTE a")), on(1, x("DEALLOCATE PREPARE a")), on(0, q("EXECUTE a")),
		{q("BEGIN"), 1, -1}, {x("PREPARE e AS SELECT 5"), -1, -1}, {q("ROLLBACK"), -1, 1}, on(0, x("EXECUTE e")),
		{q("BEGIN"), 0, -1}, {q("SELECT 1/0"), -1, -1}, {x("EXECUTE e"), -1, -1}, {x("PREPARE f AS SELECT 6"), -1, -1},
		{q("ROLLBACK"), -1, 0}, on(1, x("EXECUTE f")),
		on(1, x("DEALLOCATE ALL")), on(0, q("EXECUTE c")), on(1, x("EXECUTE b(1)")), on(0, x("PREPARE b AS SELECT 8")),
		on(1, x("EXECUTE b")),
		on(0, pipe("PREPARE g AS SELECT 'g'", "EXECUTE g", "DEALLOCATE g", "EXECUTE g", "SELECT 1")), on(1, q("EXECUTE g")),
		on(1, pipe("PREPARE h AS SELECT 'h'", "EXECUTE h", "PREPARE h AS SELECT 1")), on(0, x("EXECUTE h")),
		on(1, parseS("r", "EXECUTE h")), on(0, q("DEALLOCATE h")), on(1, run("r")), on(0, q("PREPARE h AS SELECT 2, 3")),
		on(1, run("r")), on(0, run("r")), on(1, parseS("r", "EXECUTE h")), on(0, x("EXECUTE h")),
		on(1, parseS("", "EXECUTE h")), on(0, run("")), on(1, dropNamed("dd", "DEALLOCATE h")), on(0, run("")),
		on(0, q("PREPARE k(int) AS SELECT $1 + 100")), on(1, x("EXECUTE k(1)")), on(1, x("EXECUTE k(2)")),
		on(1, q("PREPARE k2(int, text) AS SELECT $1 + 1, $2")), {q("BEGIN"), 0, -1}, {x("EXECUTE k2(1, 'x')"), -1, -1},
		{x("SELECT 1"), -1, -1}, {q("COMMIT"), -1, 0}, on(0, parseS("t", "EXPLAIN (COSTS OFF) EXECUTE k(5)")), on(1, run("t")),
		on(1, q("PREPARE k3(int) AS SELECT $1")), on(0, exchange{send: []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "SELECT 'u'"}, &pgproto3.Parse{Name: "s3", Query: "EXECUTE k3(7)"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Bind{PreparedStatement: "s3"}, &pgproto3.Execute{}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}),
		on(0, q("PREPARE k4(int, int) AS SELECT $1 * $2")), on(1, bindRun("k4", "6", "7")), on(1, bindRun("k4", "2")),
		on(0, q("PREPARE k5(text) AS SELECT $1 || '!'")), on(1, exchange{send: []pgproto3.FrontendMessage{
			&pgproto3.Describe{ObjectType: 'S', Name: "k5"}, &pgproto3.Sync{}}, ready: 1}), on(1, bindRun("k5", "hi")),
	})
}

// execParams runs sql with Parse, Bind and Execute and returns its rows,
// each row's columns joined by commas.
func execParams(ctx context.Context, c *pgconn.PgConn, sql string) ([]string, error) {
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	var rows []string
	for _, r := range res.Rows {
		var cols []string
		for _, v := range r {
			cols = append(cols, string(v))
		}
		rows = append(rows, strings.Join(cols, ","))
	}
	return rows, res.Err
}

// TestAPrepareThroughTheExtendedProtocolLeavesTheServerFree: on a single
// server, a client's PREPARE sent with Parse, Bind and Execute does not
// keep the server from another client, and the statement still runs.
func TestAPrepareThroughTheExtendedProtocolLeavesTheServerFree(t *testing.T) {
	url := oneServer(t)
	ctx := testutil.Context(t)
	a, b := testutil.Connect(t, url).PgConn(), testutil.Connect(t, url).PgConn()
	if _, err := execParams(ctx, a, "PREPARE mine AS SELECT 'a'"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if rows, err := simple(short, b, "SELECT 'b'"); err != nil || rows[0] != "b" {
		t.Fatalf("another client on the single server: %v %v", rows, err)
	}
	if rows, err := execParams(ctx, a, "EXECUTE mine"); err != nil || len(rows) != 1 || rows[0] != "a" {
		t.Fatalf("EXECUTE: %v %v", rows, err)
	}
	_, err := execParams(ctx, b, "EXECUTE mine")
	if pgErr := wantCode(t, err, "26000"); pgErr.Message != `prepared statement "mine" does not exist` {
		t.Fatalf("another client's EXECUTE: %q", pgErr.Message)
	}
}

// TestPgxStatementCacheRunsASQLPreparedStatementOnEitherServer: pgx's
// default mode parses "execute answer" once as a named statement and
// binds it in later transactions, each forced onto one of two servers.
func TestPgxStatementCacheRunsASQLPreparedStatementOnEitherServer(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	c := testutil.Connect(t, url)
	testutil.MustExec(t, c, "prepare answer(int) as select $1 + 40")
	h := []*holder{{c: testutil.Connect(t, url).PgConn()}, {c: testutil.Connect(t, url).PgConn()}}
	h[0].begin(t)
	h[1].begin(t)
	for i := range 6 {
		h[i%2].commit(t)
		var n int
		if err := c.QueryRow(ctx, "execute answer(2)").Scan(&n); err != nil || n != 42 {
			t.Fatalf("run %d: %d, %v", i, n, err)
		}
		h[i%2].begin(t)
	}
	h[0].commit(t)
	h[1].commit(t)
}
