package app_test

// The chaos suite's load driver (its checkers are in chaos_check_test.go). Each
// scenario (chaos_*_test.go) runs at least 200 real client connections
// through pgvalve, each looping
//
//	BEGIN; INSERT (client, seq, tag); SELECT its tag back; COMMIT
//
// while something breaks, and then checks the invariants: every result a
// client got was its own, the rows in the table are exactly the ones
// clients saw committed (plus some of those whose COMMIT was in doubt), the
// pool is back to idle and agrees with pg_stat_activity, no goroutine
// leaked, and a new client is answered at once.
//
// go test -race -run Chaos ./internal/app                 the short version (CI)
// PGVALVE_CHAOS=long go test -run Chaos -v ./internal/app  the long version

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var chaosLongFlag = flag.Bool("chaos.long", false, "run the long version of the chaos suite (or PGVALVE_CHAOS=long)")

func chaosLong() bool { return *chaosLongFlag || os.Getenv("PGVALVE_CHAOS") == "long" }

// chaosClients is how many client connections every scenario runs.
const chaosClients = 200

// pick returns short in the short version and long in the long one.
func pick[T any](short, long T) T {
	if chaosLong() {
		return long
	}
	return short
}

// outcome is what a client knows about one of its transactions.
type outcome uint8

const (
	notTried  outcome = iota
	failed            // COMMIT was never sent, or it answered ROLLBACK: the row must not exist
	inDoubt           // the connection failed during COMMIT: the row may exist
	committed         // COMMIT succeeded: the row must exist, once
)

// chaosClient is one client's record, indexed by seq.
type chaosClient struct {
	id       int
	outcomes []outcome
}

// txnError is one error a client saw.
type txnError struct {
	client  int
	phase   string    // connect, begin, insert, select, commit, copy
	code    string    // SQLSTATE, or a class for errors without one
	begun   time.Time // when BEGIN was answered; zero if it never was
	started time.Time // when the transaction's first statement was sent
	at      time.Time
	err     error
}

// chaosLoad drives the clients of one scenario.
type chaosLoad struct {
	url        string
	table      string
	runID      string
	txnTimeout time.Duration
	maxTxns    int // per client: the load is bounded in count as well as time

	stopped atomic.Bool
	wg      sync.WaitGroup
	txns    atomic.Int64
	commits atomic.Int64
	// since and firstOK measure recovery: the first commit that started
	// after since (unix nanoseconds; 0 = not yet).
	since, firstOK atomic.Int64

	mu struct {
		sync.Mutex
		clients []*chaosClient
		errs    []txnError
		crossed []string // results that were not the client's own
	}
}

// chaosTable creates an empty table for one scenario, owned by the test
// user. It has no unique key on purpose: a statement replayed by the
// pooler must show up as a duplicate, not as an error.
func chaosTable(t *testing.T, admin *pgx.Conn, name string) string {
	t.Helper()
	ctx := testContext(t)
	table := "chaos_" + name
	for _, sql := range []string{
		"drop table if exists " + table,
		"create table " + table + " (client int not null, seq int not null, tag text not null)",
		"alter table " + table + " owner to " + pgx.Identifier{cluster.User}.Sanitize(),
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return table
}

func newChaosLoad(url, table string, txnTimeout time.Duration) *chaosLoad {
	return &chaosLoad{url: url, table: table, runID: fmt.Sprintf("%08x", rand.Uint32()),
		txnTimeout: txnTimeout, maxTxns: pick(2000, 100000)}
}

// tag is what client id writes for seq; only that client can know it.
func (l *chaosLoad) tag(id, seq int) string { return fmt.Sprintf("%s-%d-%d", l.runID, id, seq) }

// register adds a client record with the given id.
func (l *chaosLoad) register(id int) *chaosClient {
	c := &chaosClient{id: id}
	l.mu.Lock()
	l.mu.clients = append(l.mu.clients, c)
	l.mu.Unlock()
	return c
}

// start runs n looping clients with ids from 0.
func (l *chaosLoad) start(n int) {
	for id := range n {
		c := l.register(id)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.loop(c, id%2 == 1)
		}()
	}
}

// stop ends the load and waits for every client to finish its transaction.
func (l *chaosLoad) stop() {
	l.stopped.Store(true)
	l.wg.Wait()
}

// waitCommits waits until n more transactions committed, or timeout.
func (l *chaosLoad) waitCommits(n int64, timeout time.Duration) bool {
	target := l.commits.Load() + n
	deadline := time.Now().Add(timeout)
	for l.commits.Load() < target {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (l *chaosLoad) connect(extended bool) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(l.url)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	if extended {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// loop is one client: transactions until the load stops, reconnecting
// (with a little backoff) whenever its connection is lost. Half the
// clients use the extended protocol, half the simple one.
func (l *chaosLoad) loop(c *chaosClient, extended bool) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeQuietly(conn)
		}
	}()
	for !l.stopped.Load() && len(c.outcomes) < l.maxTxns {
		if conn == nil {
			var err error
			if conn, err = l.connect(extended); err != nil {
				l.record(txnError{client: c.id, phase: "connect", err: err})
				time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
				continue
			}
		}
		if !l.txn(conn, c) {
			closeQuietly(conn)
			conn = nil
		}
	}
}

func closeQuietly(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// txn runs one transaction and records its outcome; false means the
// connection is unusable and the client must reconnect.
func (l *chaosLoad) txn(conn *pgx.Conn, c *chaosClient) bool {
	seq := len(c.outcomes)
	c.outcomes = append(c.outcomes, failed)
	tag := l.tag(c.id, seq)
	l.txns.Add(1)
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	var begun time.Time
	fail := func(phase string, err error) bool {
		l.record(txnError{client: c.id, phase: phase, begun: begun, started: started, err: err})
		if conn.IsClosed() {
			return false
		}
		if conn.PgConn().TxStatus() == 'I' {
			return true
		}
		_, rerr := conn.Exec(ctx, "rollback")
		return rerr == nil
	}
	// The test cluster runs with synchronous_commit off for speed; a
	// crash (pg_ctl stop -m immediate) would lose acknowledged commits.
	if _, err := conn.Exec(ctx, "begin; set local synchronous_commit = on"); err != nil {
		return fail("begin", err)
	}
	begun = time.Now()
	ct, err := conn.Exec(ctx, fmt.Sprintf("insert into %s (client, seq, tag) values (%d, %d, '%s')", l.table, c.id, seq, tag))
	if err != nil {
		return fail("insert", err)
	}
	if ct.String() != "INSERT 0 1" {
		l.cross(c.id, seq, fmt.Sprintf("INSERT answered %q", ct.String()))
	}
	var got, echo string
	err = conn.QueryRow(ctx, "select tag, $3::text from "+l.table+" where client = $1 and seq = $2",
		c.id, seq, tag).Scan(&got, &echo)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		l.cross(c.id, seq, "its own INSERT is not visible inside its transaction")
	case err != nil:
		return fail("select", err)
	default:
		if problem := checkOwn(tag, got, echo); problem != "" {
			l.cross(c.id, seq, problem)
		}
	}
	c.outcomes[seq] = inDoubt
	ct, err = conn.Exec(ctx, "commit")
	if err != nil {
		return fail("commit", err)
	}
	if ct.String() != "COMMIT" {
		c.outcomes[seq] = failed
		l.cross(c.id, seq, fmt.Sprintf("COMMIT answered %q: the transaction had failed unseen", ct.String()))
		return true
	}
	c.outcomes[seq] = committed
	l.commits.Add(1)
	if since := l.since.Load(); since != 0 && started.UnixNano() > since {
		l.firstOK.CompareAndSwap(0, time.Now().UnixNano())
	}
	return true
}

func (l *chaosLoad) cross(id, seq int, problem string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.crossed = append(l.mu.crossed, fmt.Sprintf("client %d seq %d: %s", id, seq, problem))
}

func (l *chaosLoad) record(e txnError) {
	e.at = time.Now()
	e.code = errorCode(e.err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.errs = append(l.mu.errs, e)
}

// errorCode is the SQLSTATE of err, or a class for errors without one.
func errorCode(err error) string {
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "broken pipe"),
		strings.Contains(err.Error(), "conn closed"):
		return "conn-closed"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	}
	return "other"
}

// errors returns a copy of the errors seen so far.
func (l *chaosLoad) errors() []txnError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.errs)
}

// errorsOf counts errors by code, for clients the filter keeps.
func errorsBy(errs []txnError, keep func(txnError) bool) map[string]int {
	m := map[string]int{}
	for _, e := range errs {
		if keep == nil || keep(e) {
			m[e.code]++
		}
	}
	return m
}
