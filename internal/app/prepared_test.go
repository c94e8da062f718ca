package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

var allExecModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
}

// TestPgxInEveryExecModeWithFiftyClientsOnAPoolOfFive runs each pgx mode
// with 50 concurrent clients sharing 5 servers; every client checks that
// every answer is its own.
func TestPgxInEveryExecModeWithFiftyClientsOnAPoolOfFive(t *testing.T) {
	s, url := startValve(t, txnConfig(5))
	for _, mode := range allExecModes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testutil.Context(t)
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for id := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- pgxClient(ctx, url, mode, id)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

// pgxClient runs a mix of queries, several of them named statements that
// every client shares, and a transaction, checking each answer.
func pgxClient(ctx context.Context, url string, mode pgx.QueryExecMode, id int) error {
	c, err := dialMode(ctx, url, mode)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for i := range 10 {
		var n int
		var tag string
		if err := c.QueryRow(ctx, "select $1::int * 1000 + $2::int, $3::text", id, i, "c").Scan(&n, &tag); err != nil {
			return fmt.Errorf("client %d query %d: %w", id, i, err)
		}
		if n != id*1000+i || tag != "c" {
			return fmt.Errorf("client %d got %d %q: another client's answer", id, n, tag)
		}
		var sum int64
		if err := c.QueryRow(ctx, "select coalesce(sum(x), 0)::bigint from generate_series(1, $1::int) x", id+i).Scan(&sum); err != nil {
			return fmt.Errorf("client %d: %w", id, err)
		}
		if want := int64((id + i) * (id + i + 1) / 2); sum != want {
			return fmt.Errorf("client %d: sum %d, want %d", id, sum, want)
		}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var inTx int
	if err := tx.QueryRow(ctx, "select $1::int", id).Scan(&inTx); err != nil || inTx != id {
		return fmt.Errorf("client %d in a transaction: %d %v", id, inTx, err)
	}
	return tx.Commit(ctx)
}

func TestPgxpoolStatementCacheUnderFortyConcurrentQueries(t *testing.T) {
	s, url := startValve(t, txnConfig(5))
	ctx := testutil.Context(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 40
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				var got int
				q := fmt.Sprintf("select $1::int + %d", i%5) // five shared statements
				if err := p.QueryRow(ctx, q, w).Scan(&got); err != nil {
					errs <- err
					return
				}
				if got != w+i%5 {
					errs <- fmt.Errorf("worker %d got %d, want %d", w, got, w+i%5)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.Close()
	s.WaitIdle(t, 10*time.Second)
}

func TestPgbenchPreparedProtocolThroughATransactionPool(t *testing.T) {
	initPgbench(t)
	cfg := txnConfig(5)
	s, _ := startValve(t, cfg)
	for _, jobs := range []string{"1", "2"} {
		processed, failed := runPgbench(t, s.Port(), "-c", "50", "-j", jobs, "-T", pgbenchSeconds(), "-M", "prepared")
		if failed != 0 || processed == 0 {
			t.Fatalf("pgbench -M prepared -j %s: %d processed, %d failed", jobs, processed, failed)
		}
	}
	s.WaitIdle(t, 10*time.Second)
}

// A plan that went stale after DDL fails once (as it would on a server of
// one's own) and is then prepared afresh, not left broken.
func TestAStatementWhosePlanWentStaleIsPreparedAgain(t *testing.T) {
	_, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	admin := direct(t)
	table := "stale_plan"
	if _, err := admin.Exec(ctx, "drop table if exists "+table+"; create table "+table+"(a int); insert into "+table+" values (1); grant all on "+table+" to "+cluster.User); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "drop table if exists "+table)
	c := testutil.Connect(t, url) // cache statement mode: named statements
	var a int
	if err := c.QueryRow(ctx, "select * from "+table).Scan(&a); err != nil || a != 1 {
		t.Fatalf("%d %v", a, err)
	}
	if _, err := admin.Exec(ctx, "alter table "+table+" add column b int default 2"); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 3 { // pgx drops its cached statement after the error and prepares again
		var b int
		if err = c.QueryRow(ctx, "select * from "+table).Scan(&a, &b); err == nil {
			if a != 1 || b != 2 {
				t.Fatalf("got %d %d", a, b)
			}
			return
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("unexpected error %v", err)
		}
	}
	t.Fatalf("the statement stayed broken: %v", err)
}

// Statements, Close, DEALLOCATE and DISCARD ALL change only the client's
// own view: two clients on one server prepare the same name with
// different SQL, and one deallocating does not affect the other.
func TestPreparedStatementNamesArePerClient(t *testing.T) {
	_, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	a, b := testutil.Connect(t, url), testutil.Connect(t, url)
	if _, err := a.Prepare(ctx, "s", "select 'a:' || $1::text"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "s", "select $1::int + 100"); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		var sa string
		var sb int
		if err := a.QueryRow(ctx, "s", "x").Scan(&sa); err != nil || sa != "a:x" {
			t.Fatalf("client a: %q %v", sa, err)
		}
		if err := b.QueryRow(ctx, "s", 1).Scan(&sb); err != nil || sb != 101 {
			t.Fatalf("client b: %d %v", sb, err)
		}
	}
	check()
	// A duplicate name is refused for that client only.
	_, err := a.PgConn().Prepare(ctx, "s", "select 2", nil)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P05" {
		t.Fatalf("duplicate prepare: want 42P05, got %v", err)
	}
	check()
	if _, err := a.Exec(ctx, "deallocate s"); err != nil {
		t.Fatalf("deallocate: %v", err)
	}
	if _, err := a.PgConn().Prepare(ctx, "s", "select 'again:' || $1::text", nil); err != nil {
		t.Fatalf("the name is free again after DEALLOCATE: %v", err)
	}
	var sb int
	if err := b.QueryRow(ctx, "s", 2).Scan(&sb); err != nil || sb != 102 {
		t.Fatalf("client b after a's DEALLOCATE: %d %v", sb, err)
	}
	if _, err := b.Exec(ctx, "discard all"); err != nil {
		t.Fatal(err)
	}
	var sa string
	if err := a.QueryRow(ctx, "s", "y").Scan(&sa); err != nil || sa != "again:y" {
		t.Fatalf("client a after b's DISCARD ALL: %q %v", sa, err)
	}
}

func TestPipelinesWithErrorsKeepTheBookkeepingRight(t *testing.T) {
	_, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	c, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	other, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for round := range 5 {
		p := c.StartPipeline(ctx)
		p.SendPrepare(fmt.Sprintf("ok%d", round), "select $1::int + 1", nil)
		p.SendQueryParams("select 1/0", nil, nil, nil, nil) // fails: the rest up to Sync is skipped
		p.SendPrepare(fmt.Sprintf("skipped%d", round), "select 2", nil)
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		p.SendQueryParams("select $1::int * 2", [][]byte{[]byte("21")}, nil, nil, nil)
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		results := drainPipeline(t, p)
		if want := "[prepared 22012 sync 42 sync]"; fmt.Sprint(results) != want {
			t.Fatalf("round %d: results %v, want %s", round, results, want)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		// The statement prepared before the error exists; the one after it does not.
		if _, err := c.ExecPrepared(ctx, fmt.Sprintf("ok%d", round), [][]byte{[]byte("1")}, nil, nil).Close(); err != nil {
			t.Fatalf("round %d: ok%d must exist: %v", round, round, err)
		}
		_, err := c.ExecPrepared(ctx, fmt.Sprintf("skipped%d", round), nil, nil, nil).Close()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "26000" {
			t.Fatalf("round %d: skipped%d must not exist: %v", round, round, err)
		}
		// Another client of the same server is unaffected.
		if _, err := other.Exec(ctx, "select 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
}

// drainPipeline reads every result of a pipeline, recording each value or
// error code.
func drainPipeline(t *testing.T, p *pgconn.Pipeline) []string {
	t.Helper()
	var out []string
	for {
		r, err := p.GetResults()
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				out = append(out, pgErr.Code)
				continue
			}
			t.Fatal(err)
		}
		switch r := r.(type) {
		case nil:
			return out
		case *pgconn.ResultReader:
			res := r.Read()
			if res.Err != nil {
				var pgErr *pgconn.PgError
				if errors.As(res.Err, &pgErr) {
					out = append(out, pgErr.Code)
					continue
				}
				t.Fatal(res.Err)
			}
			if len(res.Rows) > 0 {
				out = append(out, string(res.Rows[0][0]))
			}
		case *pgconn.StatementDescription:
			out = append(out, "prepared")
		case *pgconn.PipelineSync:
			out = append(out, "sync")
		}
	}
}
