package app_test

// Chaos scenarios about statements: statements longer than pgvalve's read
// buffer, and named prepared statements on servers that vandals keep
// clearing. Each guards a defect that reached users (RELIABILITY.md,
// "Defects this suite now guards").

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// chaosLargeSizes are the sizes of padded statements as whole Query
// messages (a Parse is a few bytes longer: it also names the statement
// and its parameter types): most on and around the 16 KiB read buffer,
// the bug report's 20,000-character INSERT, and a few far past it. A fixed
// set, so that a client caching statements by text holds ten of them, not
// one per INSERT.
var chaosLargeSizes = func() []int {
	b := wire.DefaultBufferSize
	return []int{b - 1, b, b + 1, b + 5, b + 300, 17 << 10, 20000, 2*b + 3, 64 << 10, 1 << 20}
}()

// padded is sql with a comment that makes its Query message size bytes
// (type, length and NUL included); sql itself when size is 0.
func padded(sql string, size int) string {
	if size == 0 {
		return sql
	}
	const frame, comment = 5 + 1, len(" /**/")
	return sql + " /*" + strings.Repeat("x", size-frame-comment-len(sql)) + "*/"
}

// largeMix is the load with statements longer than the read buffer mixed
// in, in all three ways pgx talks: about one INSERT in eight padded, about
// one transaction in four a lone INSERT (so that an error for a statement
// that ran shows as a row its client saw fail).
var largeMix = loadShape{
	modes: []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement},
	alone: 4,
	large: 8,
}

// mayHaveRun reports whether err leaves the statement it answered in
// doubt. An error from PostgreSQL or pgvalve is an answer: the statement
// did not happen, unless pgvalve lost the server under it and says so
// (08006, "the statement may have run"). Only a client that got no answer
// (its connection closed, or its own deadline passed) cannot know.
func mayHaveRun(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	return pgErr.Code == "08006" && strings.Contains(pgErr.Message, "the statement may have run")
}

// afterError is the outcome of a transaction that was o when err came: an
// in-doubt one stays in doubt only if err says the statement may have run.
func afterError(o outcome, err error) outcome {
	if o == inDoubt && !mayHaveRun(err) {
		return failed
	}
	return o
}

// defectErrors reports errors that only a pgvalve defect causes, whatever
// else breaks: a prepared statement gone under a client that never dropped
// it (26000; the load's clients drop none), pgvalve's server-side
// statement names (pgv_) showing through, pgvalve losing track of which
// answer belongs to which message, and PostgreSQL refusing what pgvalve
// sent as not a message (08P01; the load sends only whole, valid ones).
func defectErrors(errs []txnError) []string {
	var bad []string
	for _, e := range errs {
		msg := ""
		if e.err != nil {
			msg = e.err.Error()
		}
		switch {
		case e.code == "26000":
			bad = append(bad, fmt.Sprintf("client %d: a prepared statement vanished under it in %s: %v", e.client, e.phase, e.err))
		case strings.Contains(msg, "pgv_"):
			bad = append(bad, fmt.Sprintf("client %d: pgvalve's own statement name showed in %s: %v", e.client, e.phase, e.err))
		case strings.Contains(msg, stmt.ErrDesync.Error()):
			bad = append(bad, fmt.Sprintf("client %d: pgvalve lost track of the protocol in %s: %v", e.client, e.phase, e.err))
		case e.code == "08P01" || strings.Contains(msg, "SQLSTATE 08P01"):
			bad = append(bad, fmt.Sprintf("client %d: PostgreSQL got something that was not a message in %s: %v", e.client, e.phase, e.err))
		}
	}
	return bad
}

// 6. Statements longer than the read buffer with nothing breaking, in
// transaction and session pooling: a third of the clients in each of the
// simple protocol, the extended one with unnamed statements, and pgx's
// statement cache; about one INSERT in three padded to 16 KiB–1 MiB, one
// in three alone outside a transaction block. Nothing breaks, so no client
// may see any error: an error for an INSERT that ran is what made an app
// that retries insert twice.
func TestChaosStatementsLongerThanTheBufferMidLoad(t *testing.T) {
	shape := largeMix
	shape.alone, shape.large = 3, 3
	for _, mode := range []config.PoolMode{config.PoolTransaction, config.PoolSession} {
		t.Run(string(mode), func(t *testing.T) {
			poolSize := pick(10, 20)
			if mode == config.PoolSession {
				// A session holds its server until it leaves: one each.
				shape.clients = pick(50, 100)
				poolSize = shape.clients
			}
			cfg := chaosConfig(poolSize)
			cfg.PoolMode = mode
			e := startChaos(t, "large_"+string(mode), cfg, chaosOpts{txnTimeout: 20 * time.Second, shape: shape})
			e.progress("load with large statements", pick[int64](1000, 20000))
			if errs := errorsBy(e.load.errors(), nil); len(errs) > 0 {
				t.Errorf("clients saw errors with nothing breaking: %v", errs)
			}
			e.finish("")
		})
	}
}

// 7. Vandals on shared servers: 200 clients use named prepared statements
// from pgx's statement cache on a small transaction pool, some INSERTs
// alone (their Parse and their Execute then take a server each) and some
// padded past the read buffer, while 12 vandals keep dropping every
// prepared statement of whatever server they get, in each way of
// statementDrops (DISCARD ALL and DEALLOCATE ALL with Parse, Bind and
// Execute, DEALLOCATE ALL inside a DO block and as a simple query, ...).
// A client's statements are its own: no client sees any error, 26000
// least of all, the vandals included.
func TestChaosVandalsDropPreparedStatementsOnSharedServers(t *testing.T) {
	const vandals = 12
	shape := loadShape{modes: []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement}, alone: 3, large: 10}
	e := startChaos(t, "vandals", chaosConfig(pick(4, 8)), chaosOpts{txnTimeout: 20 * time.Second, shape: shape})
	end := time.Now().Add(pick(3*time.Second, 20*time.Second))
	done := make(chan map[string]int, vandals)
	for k := range vandals {
		c := e.load.register(100000 + k)
		go func() { done <- e.load.vandal(c, end) }()
	}
	drops := map[string]int{}
	for range vandals {
		for name, n := range <-done {
			drops[name] += n
		}
	}
	e.progress("load after the vandals", pick[int64](200, 2000))
	if errs := errorsBy(e.load.errors(), nil); len(errs) > 0 {
		t.Errorf("clients saw errors while vandals dropped statements: %v", errs)
	}
	e.finish(fmt.Sprintf("drops=%v", drops))
}

// vandal drops every prepared statement of whatever server it gets, in
// each way of statementDrops in turn, until end, and counts its drops.
func (l *chaosLoad) vandal(c *chaosClient, end time.Time) map[string]int {
	drops := map[string]int{}
	conn, err := l.connect(pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		l.record(txnError{client: c.id, phase: "connect", err: err})
		return drops
	}
	defer closeQuietly(conn)
	for i := 0; time.Now().Before(end); i++ {
		drop := statementDrops[i%len(statementDrops)]
		ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
		err := drop.run(ctx, conn)
		cancel()
		if err != nil {
			l.record(txnError{client: c.id, phase: drop.name, err: err})
			if conn.IsClosed() {
				return drops
			}
			continue
		}
		drops[drop.name]++
	}
	return drops
}
