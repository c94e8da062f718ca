package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// oneServer is transaction pooling over a single server, so every client
// in a test shares it and its prepared statements.
func oneServer(t *testing.T) string {
	t.Helper()
	_, url := startValve(t, txnConfig(1))
	return url
}

// useCached runs sql as pgx's statement cache does (a named statement per
// text, prepared once per connection) and returns the first column.
func useCached(ctx context.Context, c *pgx.Conn, sql string, args ...any) (string, error) {
	var v string
	err := c.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

// extended runs sql with Parse, Bind and Execute, as libpq's PQexecParams
// and pgconn's ExecParams do (pgx's Exec without arguments would send a
// simple query).
func extended(ctx context.Context, c *pgx.Conn, sql string) error {
	return c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
}

// statementDrops are the ways PostgreSQL lets a client drop its prepared
// statements, some of which pgvalve can only see the effects of. On a
// shared server each must drop the client's own statements and no one
// else's.
var statementDrops = []struct {
	name string
	run  func(ctx context.Context, c *pgx.Conn) error
}{
	{"DEALLOCATE ALL with Parse, Bind and Execute", func(ctx context.Context, c *pgx.Conn) error {
		return extended(ctx, c, "DEALLOCATE ALL")
	}},
	{"DISCARD ALL with Parse, Bind and Execute", func(ctx context.Context, c *pgx.Conn) error {
		return extended(ctx, c, "DISCARD ALL")
	}},
	{"DEALLOCATE PREPARE name with Parse, Bind and Execute", func(ctx context.Context, c *pgx.Conn) error {
		// pgconn's Prepare, which always sends Parse: pgx's remembers the
		// name and would skip it the next time.
		if _, err := c.PgConn().Prepare(ctx, "mine", "select 'mine'", nil); err != nil {
			return err
		}
		return extended(ctx, c, "DEALLOCATE PREPARE mine")
	}},
	{"DEALLOCATE ALL inside a DO block", func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")
		return err
	}},
	{"DISCARD ALL as a simple query", func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DISCARD ALL", pgx.QueryExecModeSimpleProtocol)
		return err
	}},
	{"DEALLOCATE ALL as a simple query", func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DEALLOCATE ALL", pgx.QueryExecModeSimpleProtocol)
		return err
	}},
}

// One client dropping prepared statements, in any of the ways PostgreSQL
// allows, drops only its own: the others' keep working on the shared
// server, and no error names pgvalve's server-side statements.
func TestDeallocatingOnASharedServerBreaksNoOtherClient(t *testing.T) {
	for _, drop := range statementDrops {
		t.Run(drop.name, func(t *testing.T) {
			ctx := testutil.Context(t)
			url := oneServer(t)
			others := []*pgx.Conn{testutil.Connect(t, url), testutil.Connect(t, url)}
			const sql = "select $1::text || ' ok'"
			for round := range 3 {
				for i, c := range others {
					if v, err := useCached(ctx, c, sql, "other"); err != nil || v != "other ok" {
						t.Fatalf("round %d, client %d: %q, %v", round, i, v, err)
					}
				}
				// A new connection each round: its own statements are gone
				// after it drops them, as they would be on PostgreSQL.
				dropper := testutil.Connect(t, url)
				if v, err := useCached(ctx, dropper, sql, "dropper"); err != nil || v != "dropper ok" {
					t.Fatalf("round %d, the dropping client before it drops: %q, %v", round, v, err)
				}
				if err := drop.run(ctx, dropper); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		})
	}
}

// The client that drops its statements sees them gone, as on a server of
// its own: PostgreSQL's error, under its own name.
func TestAClientThatDeallocatesSeesItsStatementsGone(t *testing.T) {
	ctx := testutil.Context(t)
	c := testutil.Connect(t, oneServer(t))
	pc := c.PgConn()
	for _, drop := range []string{"DEALLOCATE ALL", "DEALLOCATE s1", "DEALLOCATE PREPARE s1", "DISCARD ALL"} {
		t.Run(drop, func(t *testing.T) {
			if _, err := pc.Prepare(ctx, "s1", "select 1", nil); err != nil {
				t.Fatal(err)
			}
			if err := pc.ExecParams(ctx, drop, nil, nil, nil, nil).Read().Err; err != nil {
				t.Fatalf("%s: %v", drop, err)
			}
			err := pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err
			if pgErr := wantCode(t, err, "26000"); pgErr.Message != `prepared statement "s1" does not exist` {
				t.Fatalf("after %s: %q", drop, pgErr.Message)
			}
			if _, err := pc.Prepare(ctx, "s1", "select 2", nil); err != nil {
				t.Fatalf("preparing s1 again after %s: %v", drop, err)
			}
			if err := pc.Deallocate(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
		})
	}
	// DEALLOCATE of a name the client never had is PostgreSQL's error,
	// whatever the shared server holds under that name.
	err := pc.ExecParams(ctx, "DEALLOCATE nope", nil, nil, nil, nil).Read().Err
	if pgErr := wantCode(t, err, "26000"); pgErr.Message != `prepared statement "nope" does not exist` {
		t.Fatalf("DEALLOCATE nope: %q", pgErr.Message)
	}
}

// A function can run DEALLOCATE where pgvalve cannot see it. When the
// server then says one of pgvalve's statements is missing, pgvalve forgets
// what it knew of that server: the client is told under its own name (its
// transaction failed on PostgreSQL too), and every client's next use
// prepares afresh.
func TestAStatementDroppedByAFunctionIsPreparedAgainForEveryClient(t *testing.T) {
	ctx := testutil.Context(t)
	owner := ownerConn(t)
	testutil.MustExec(t, owner, `create or replace function drop_all_statements() returns int language plpgsql as
		$$ begin execute 'DEALLOCATE ALL'; return 1; end $$`)
	url := oneServer(t)
	a, b := testutil.Connect(t, url), testutil.Connect(t, url)
	const sql = "select $1::int + 1"
	for _, c := range []*pgx.Conn{a, b} {
		if v, err := useCached(ctx, c, sql, 1); err != nil || v != "2" {
			t.Fatalf("first use: %q, %v", v, err)
		}
	}
	if _, err := a.Exec(ctx, "select drop_all_statements()"); err != nil {
		t.Fatal(err)
	}
	_, err := useCached(ctx, b, sql, 1)
	if err != nil && (!strings.Contains(err.Error(), "26000") || strings.Contains(err.Error(), "pgv_")) {
		t.Fatalf("the first use after the function: %v", err)
	}
	for _, c := range []*pgx.Conn{a, b, a, b} {
		if v, err := useCached(ctx, c, sql, 1); err != nil || v != "2" {
			t.Fatalf("after the function: %q, %v", v, err)
		}
	}
}

// A table dropped and created again with other column types makes a
// statement prepared before it refuse to run, on PostgreSQL itself; a
// statement parsed after it, by any client, runs.
func TestAStatementParsedAfterATableChangedNeverInheritsAStalePlan(t *testing.T) {
	ctx := testutil.Context(t)
	owner := newTable(t, "reshaped", "id int, v int")
	testutil.MustExec(t, owner, "insert into reshaped values (1, 10)")
	url := oneServer(t)
	old := testutil.Connect(t, url)
	const sql = "select * from reshaped where id = $1"
	var id, v int
	if err := old.QueryRow(ctx, sql, 1).Scan(&id, &v); err != nil || v != 10 {
		t.Fatalf("before: %d, %v", v, err)
	}
	testutil.MustExec(t, owner, "drop table reshaped")
	testutil.MustExec(t, owner, "create table reshaped (id int, v text, extra text)")
	testutil.MustExec(t, owner, "insert into reshaped values (1, 'ten', 'x')")

	// A new client's first Parse of the same text: fresh, as PostgreSQL's.
	fresh := testutil.Connect(t, url)
	var s, extra string
	if err := fresh.QueryRow(ctx, sql, 1).Scan(&id, &s, &extra); err != nil || s != "ten" {
		t.Fatalf("a new client's statement: %q, %v", s, err)
	}
	// The old client's statement is stale, as on its own server.
	raw := old.PgConn()
	sd, err := raw.Prepare(ctx, "before", sql, nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, owner, "alter table reshaped add column more int")
	err = raw.ExecPrepared(ctx, sd.Name, [][]byte{[]byte("1")}, nil, nil).Read().Err
	wantCode(t, err, "0A000")
	// pgx notices, prepares again and goes on.
	if err := old.QueryRow(ctx, "select v from reshaped where id = $1", 1).Scan(&s); err != nil || s != "ten" {
		t.Fatalf("the old client after the change: %q, %v", s, err)
	}
	if err := fresh.QueryRow(ctx, "select v from reshaped where id = $1", 1).Scan(&s); err != nil || s != "ten" {
		t.Fatalf("the new client after the change: %q, %v", s, err)
	}
}

// A driver that prepares again after 42804 (a parameter's type no longer
// fits the column) gets a statement parsed now, not the one that failed.
func TestReparsingAfterADatatypeMismatchIsFresh(t *testing.T) {
	ctx := testutil.Context(t)
	owner := newTable(t, "retyped", "v int")
	url := oneServer(t)
	a := testutil.Connect(t, url).PgConn()
	const sql = "insert into retyped (v) values ($1)"
	if _, err := a.Prepare(ctx, "ins", sql, nil); err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, owner, "alter table retyped alter column v type text")
	b := testutil.Connect(t, url).PgConn()
	for _, c := range []*pgconn.PgConn{a, b} {
		_ = c.Deallocate(ctx, "ins")
		if _, err := c.Prepare(ctx, "ins", sql, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.ExecPrepared(ctx, "ins", [][]byte{[]byte("text now")}, nil, nil).Read().Err; err != nil {
			t.Fatalf("a statement parsed after the change: %v", err)
		}
	}
}

// SQL that names a client's statements made with Parse shares their
// namespace, as in PostgreSQL: each statement of the query gets
// PostgreSQL's answer where it runs.
func TestSQLNamingProtocolStatementsGetsPostgresAnswers(t *testing.T) {
	q := func(sql string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}, ready: 1}
	}
	prepare := func(name string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: "select 1"},
			&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	bind := func(name string) exchange {
		return exchange{send: []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{}}, ready: 1}
	}
	sameAsPostgresIn(t, trackedModes, "", []exchange{
		prepare("s1"), q("PREPARE s1 AS select 2"), bind("s1"),
		q("select 1; EXECUTE s1; DEALLOCATE s1; select 2"), bind("s1"),
		prepare("s2"), q("select 1/0; DEALLOCATE s2"), bind("s2"),
		q("DEALLOCATE PREPARE s2; select 1/0"), bind("s2"),
		q("PREPARE sqlside AS select 3; EXECUTE sqlside"), bind("sqlside"), q("DEALLOCATE sqlside"),
	})
}

// pgvalve's own server-side names are no client's: SQL and protocol
// messages that name them get what a name nobody made gets (PREPARE of
// one: 42939), before anything reaches the server's statements.
func TestPgvalvesOwnStatementNamesAreNoClients(t *testing.T) {
	ctx := testutil.Context(t)
	pc := testutil.Connect(t, oneServer(t)).PgConn()
	if _, err := pc.Prepare(ctx, "s1", "select 1", nil); err != nil {
		t.Fatal(err)
	}
	const own = "pgv_0123456789abcdef01234567"
	for _, tc := range []struct{ sql, code, says string }{
		{"EXECUTE " + own, "26000", `prepared statement "` + own + `" does not exist`},
		{"select 1; DEALLOCATE " + own, "26000", `prepared statement "` + own + `" does not exist`},
		{"PREPARE pgv_mine AS select 1", "42939", "reserved by pgvalve"},
	} {
		_, err := pc.Exec(ctx, tc.sql).ReadAll()
		if pgErr := wantCode(t, err, tc.code); !strings.Contains(pgErr.Message, tc.says) {
			t.Errorf("%s: %q, want it to say %q", tc.sql, pgErr.Message, tc.says)
		}
		if err := pc.ExecPrepared(ctx, "s1", nil, nil, nil).Read().Err; err != nil {
			t.Fatalf("after %s, s1: %v", tc.sql, err)
		}
	}
}

// A statement's shape comes from its RowDescription, which for a wide
// result is bigger than the read buffer: it is read whole, or two wide
// shapes would look alike. A client whose wide statement went stale gets
// 0A000 on a server whose copy was parsed after the change.
func TestAWideStatementsShapeIsReadWhole(t *testing.T) {
	ctx := testutil.Context(t)
	cols := func(last string) string {
		var b strings.Builder
		for i := range 300 {
			fmt.Fprintf(&b, "column_with_a_long_name_to_make_the_description_wide_%03d int, ", i)
		}
		return b.String() + "tail " + last
	}
	owner := newTable(t, "wide", cols("int"))
	url := oneServer(t)
	a := testutil.Connect(t, url)
	const sql = "select * from wide where tail = $1"
	if _, err := a.PgConn().Prepare(ctx, "wa", sql, nil); err != nil {
		t.Fatal(err)
	}
	one := [][]byte{[]byte("1")}
	if err := a.PgConn().ExecPrepared(ctx, "wa", one, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, owner, "drop table wide")
	testutil.MustExec(t, owner, "create table wide ("+cols("bigint")+")")
	admin := direct(t)
	pid := backendPID(t, a)
	terminate(t, admin, pid) // the next server is a new one
	testutil.Eventually(t, "the server to go", func() bool {
		var gone bool
		return admin.QueryRow(ctx, "select not exists (select from pg_stat_activity where pid = $1)", pid).Scan(&gone) == nil && gone
	})
	b := testutil.Connect(t, url)
	if _, err := b.Exec(ctx, sql, 1); err != nil {
		t.Fatalf("a client parsing after the change: %v", err)
	}
	wantCode(t, a.PgConn().ExecPrepared(ctx, "wa", one, nil, nil).Read().Err, "0A000")
}
