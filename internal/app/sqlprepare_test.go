package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// simple runs sql as one simple Query and returns its last result's rows,
// each row's columns joined by commas.
func simple(ctx context.Context, c *pgconn.PgConn, sql string) ([]string, error) {
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows []string
	if len(res) > 0 {
		for _, r := range res[len(res)-1].Rows {
			var cols []string
			for _, v := range r {
				cols = append(cols, string(v))
			}
			rows = append(rows, strings.Join(cols, ","))
		}
	}
	return rows, nil
}

// holder is a client holding a server in an open transaction.
type holder struct {
	c   *pgconn.PgConn
	pid string
}

func (h *holder) begin(t *testing.T) {
	t.Helper()
	rows, err := simple(testutil.Context(t), h.c, "BEGIN; SELECT pg_backend_pid()")
	if err != nil {
		t.Fatal(err)
	}
	h.pid = rows[0]
}

func (h *holder) commit(t *testing.T) {
	t.Helper()
	if _, err := simple(testutil.Context(t), h.c, "COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// TestASQLPreparedStatementFollowsItsClientAcrossServers prepares with SQL
// on one server, then runs the statement in transactions that are each
// forced onto the other of two servers (two clients hold both in open
// transactions; the one on the server it used last lets go), and gets
// PostgreSQL's rows on both.
func TestASQLPreparedStatementFollowsItsClientAcrossServers(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	a := testutil.Connect(t, url).PgConn()
	if _, err := simple(ctx, a, "PREPARE twice(int) AS SELECT $1 * 2, pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	h := []*holder{{c: testutil.Connect(t, url).PgConn()}, {c: testutil.Connect(t, url).PgConn()}}
	h[0].begin(t)
	h[1].begin(t)
	last, seen := "", map[string]bool{}
	for i := range 6 {
		free := h[0]
		if free.pid == last {
			free = h[1]
		}
		free.commit(t)
		rows, err := simple(ctx, a, "EXECUTE twice("+strconv.Itoa(i)+")")
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if want := strconv.Itoa(2*i) + "," + free.pid; len(rows) != 1 || rows[0] != want {
			t.Fatalf("run %d: %v, want %s", i, rows, want)
		}
		last, seen[free.pid] = free.pid, true
		free.begin(t)
	}
	if len(seen) != 2 {
		t.Fatalf("ran on %d servers, want 2", len(seen))
	}
	h[0].commit(t)
	h[1].commit(t)
}

// TestASQLPreparedNameIsItsClientsAlone: another client on the same single
// server cannot run a client's SQL-prepared statement (26000, naming it
// as the client did), and prepares the same name with other text as its
// own; DEALLOCATE and DISCARD ALL end the client's.
func TestASQLPreparedNameIsItsClientsAlone(t *testing.T) {
	url := oneServer(t)
	ctx := testutil.Context(t)
	a, b := testutil.Connect(t, url).PgConn(), testutil.Connect(t, url).PgConn()
	if _, err := simple(ctx, a, "PREPARE mine AS SELECT 'a'"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"EXECUTE mine", "DEALLOCATE mine", "EXPLAIN EXECUTE mine"} {
		_, err := simple(ctx, b, sql)
		if pgErr := wantCode(t, err, "26000"); pgErr.Message != `prepared statement "mine" does not exist` {
			t.Fatalf("%s: %q", sql, pgErr.Message)
		}
	}
	if _, err := simple(ctx, b, "PREPARE mine AS SELECT 'b'"); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[*pgconn.PgConn]string{a: "a", b: "b"} {
		if rows, err := simple(ctx, c, "EXECUTE mine"); err != nil || len(rows) != 1 || rows[0] != want {
			t.Fatalf("want %s, got %v %v", want, rows, err)
		}
	}
	for _, end := range []string{"DEALLOCATE mine", "DISCARD ALL", "DEALLOCATE ALL", "DEALLOCATE PREPARE mine"} {
		if _, err := simple(ctx, a, end); err != nil {
			t.Fatalf("%s: %v", end, err)
		}
		_, err := simple(ctx, a, "EXECUTE mine")
		wantCode(t, err, "26000")
		if rows, err := simple(ctx, b, "EXECUTE mine"); err != nil || rows[0] != "b" {
			t.Fatalf("after the other's %s: %v %v", end, rows, err)
		}
		if _, err := simple(ctx, a, "PREPARE mine AS SELECT 'a'"); err != nil {
			t.Fatalf("after %s, PREPARE again: %v", end, err)
		}
	}
}

// TestAProtocolStatementRunsWithSQLExecuteOnAServerThatLacksIt: a
// statement made with Parse on one server runs with EXECUTE on the other.
func TestAProtocolStatementRunsWithSQLExecuteOnAServerThatLacksIt(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	a := testutil.Connect(t, url).PgConn()
	if _, err := a.Prepare(ctx, "parsed", "SELECT $1::int + 1, pg_backend_pid()", nil); err != nil {
		t.Fatal(err)
	}
	h := &holder{c: testutil.Connect(t, url).PgConn()}
	seen := map[string]bool{}
	for i := range 4 {
		h.begin(t)
		rows, err := simple(ctx, a, "EXECUTE parsed("+strconv.Itoa(i)+")")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.SplitN(rows[0], ",", 2)
		if got[0] != strconv.Itoa(i+1) || got[1] == h.pid {
			t.Fatalf("run %d: %v on %s's server", i, rows, h.pid)
		}
		seen[got[1]] = true
		h.commit(t)
	}
}

// sqlPrepareModes are the modes the transcripts run in; statement mode
// refuses transactions, so it gets the transcript without them.
var sqlPrepareModes = []poolModeCase{
	{"session", config.PoolSession, 200},
	{"transaction", config.PoolTransaction, 200},
	{"transaction with a cache of one", config.PoolTransaction, 1},
}

// TestSQLPrepareGetsPostgresAnswers holds a conversation of SQL-level
// PREPARE, EXECUTE and DEALLOCATE, errors and transactions included, on
// PostgreSQL and through pgvalve over two servers, and compares them.
func TestSQLPrepareGetsPostgresAnswers(t *testing.T) {
	q := func(sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, ready: 1}
	}
	bind := func(name string, params ...string) exchange {
		var vals [][]byte
		for _, p := range params {
			vals = append(vals, []byte(p))
		}
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name, Parameters: vals},
			&pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	sameAsPostgresIn(t, sqlPrepareModes, "", []exchange{
		q("PREPARE p AS SELECT 1"), q("PREPARE p AS SELECT 2"), q("EXECUTE p"), q("EXECUTE p(1)"),
		q("EXECUTE nope"), q("DEALLOCATE nope"), q("EXPLAIN (COSTS OFF) EXECUTE nope"),
		q("PREPARE c(int) AS SELECT $1 + 1"), q("EXECUTE c"), q("EXECUTE c('x')"), q("EXECUTE c(41)"),
		q("EXPLAIN (COSTS OFF) EXECUTE c(1)"), q("explain execute c(1)"), bind("c", "5"), bind("p"),
		q("BEGIN"), q("PREPARE d AS SELECT 4"), q("ROLLBACK"), q("EXECUTE d"),
		q("BEGIN"), q("DEALLOCATE d"), q("ROLLBACK"), q("EXECUTE d"),
		q("PREPARE e AS SELECT 5; SELECT 1/0"), q("EXECUTE e"),
		q("PREPARE f AS SELECT 6; EXECUTE f; DEALLOCATE f; EXECUTE f"), q("EXECUTE f"),
		q("PREPARE g AS SELECT 7; PREPARE g2 AS SELECT 7; EXECUTE g; EXECUTE g2"), q("EXECUTE g2"),
		q("PREPARE h AS SELECT * FROM no_such_table"), q("EXECUTE h"), q("PREPARE h AS SELECT 8"), q("EXECUTE h"),
		q("PREPARE i AS SELECT 9; PREPARE i AS SELECT 10"), q("EXECUTE i"),
		q("BEGIN"), q("SELECT 1/0"), q("PREPARE j AS SELECT 1"), q("EXECUTE p"), q("ROLLBACK"), q("EXECUTE j"),
		q("CREATE TEMP TABLE ct AS EXECUTE c(2)"), q("SELECT * FROM ct"), q("DISCARD ALL"),
		q("EXECUTE p"), q("EXECUTE c(1)"), q("PREPARE p AS SELECT 11"), q("EXECUTE p"),
	})
}

// TestSQLPrepareInStatementPoolingGetsPostgresAnswers: every statement may
// run on another server, and a SQL-prepared statement still runs.
func TestSQLPrepareInStatementPoolingGetsPostgresAnswers(t *testing.T) {
	q := func(sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, ready: 1}
	}
	sameAsPostgresIn(t, []poolModeCase{{"statement", config.PoolStatement, 200}}, "", []exchange{
		q("PREPARE p(int) AS SELECT $1 * 3"), q("EXECUTE p(1)"), q("EXECUTE p(2)"), q("EXECUTE p"),
		q("PREPARE p AS SELECT 1"), q("DEALLOCATE p"), q("EXECUTE p(1)"), q("DEALLOCATE p"),
	})
}

// TestClientsSharingTwoServersEachRunTheirOwnSQLPreparedName: eight
// clients prepare the same name with their own text, over two servers,
// and run it concurrently; each always gets its own statement's answer.
func TestClientsSharingTwoServersEachRunTheirOwnSQLPreparedName(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	errs := make(chan error, 8)
	for id := range 8 {
		go func() {
			c, err := pgconn.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			me := strconv.Itoa(id)
			if _, err := simple(ctx, c, "PREPARE s(int) AS SELECT "+me+" * 1000 + $1"); err != nil {
				errs <- err
				return
			}
			for i := range 30 {
				rows, err := simple(ctx, c, "EXECUTE s("+strconv.Itoa(i)+")")
				if want := strconv.Itoa(id*1000 + i); err != nil || len(rows) != 1 || rows[0] != want {
					errs <- fmt.Errorf("client %d run %d: %v %v, want %s", id, i, rows, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
