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

	"github.com/pgvalve/pgvalve/internal/testutil"
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

// loadShape is what a scenario's clients send. The zero value is the
// first load: 200 clients, half in the simple protocol and half in the
// extended one with unnamed statements, every INSERT short and inside
// BEGIN ... COMMIT.
type loadShape struct {
	clients int                 // 0: chaosClients
	modes   []pgx.QueryExecMode // client id speaks modes[id%len(modes)]; nil: simple, exec
	// alone: about one transaction in alone is a single INSERT outside a
	// transaction block, whose own answer says whether its row exists (0:
	// none). Not for scenarios that crash PostgreSQL: the test cluster
	// runs with synchronous_commit off.
	alone int
	// large: about one INSERT in large is padded past the read buffer
	// (0: none); see chaosLargeSizes.
	large int
}

// chaosLoad drives the clients of one scenario.
type chaosLoad struct {
	url        string
	table      string
	runID      string
	txnTimeout time.Duration
	maxTxns    int // per client: the load is bounded in count as well as time
	shape      loadShape
	n          int // looping clients started

	stopped atomic.Bool
	wg      sync.WaitGroup
	txns    atomic.Int64
	commits atomic.Int64
	// lone and long count lone INSERTs and INSERTs padded past the buffer.
	lone, long atomic.Int64
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
	ctx := testutil.Context(t)
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
	l.n = n
	for id := range n {
		c := l.register(id)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.loop(c, l.mode(id))
		}()
	}
}

// mode is how client id talks to pgvalve.
func (l *chaosLoad) mode(id int) pgx.QueryExecMode {
	modes := l.shape.modes
	if len(modes) == 0 {
		modes = []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec}
	}
	return modes[id%len(modes)]
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

func (l *chaosLoad) connect(mode pgx.QueryExecMode) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	return dialMode(ctx, l.url, mode)
}

// loop is one client: transactions until the load stops, reconnecting
// (with a little backoff) whenever its connection is lost.
func (l *chaosLoad) loop(c *chaosClient, mode pgx.QueryExecMode) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeQuietly(conn)
		}
	}()
	for !l.stopped.Load() && len(c.outcomes) < l.maxTxns {
		if conn == nil {
			var err error
			if conn, err = l.connect(mode); err != nil {
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

// attempt is one transaction of one client.
type attempt struct {
	l       *chaosLoad
	conn    *pgx.Conn
	c       *chaosClient
	seq     int
	tag     string
	started time.Time // its first statement was sent
	begun   time.Time // BEGIN was answered; zero if it never was
}

// txn runs one transaction and records its outcome; false means the
// connection is unusable and the client must reconnect.
func (l *chaosLoad) txn(conn *pgx.Conn, c *chaosClient) bool {
	a := &attempt{l: l, conn: conn, c: c, seq: len(c.outcomes), started: time.Now()}
	a.tag = l.tag(c.id, a.seq)
	c.outcomes = append(c.outcomes, failed)
	l.txns.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	if l.shape.alone > 0 && rand.IntN(l.shape.alone) == 0 {
		l.lone.Add(1)
		return a.alone(ctx)
	}
	return a.block(ctx)
}

// block runs BEGIN; INSERT; SELECT it back; COMMIT.
func (a *attempt) block(ctx context.Context) bool {
	// The test cluster runs with synchronous_commit off for speed; a
	// crash (pg_ctl stop -m immediate) would lose acknowledged commits.
	if _, err := a.conn.Exec(ctx, "begin; set local synchronous_commit = on"); err != nil {
		return a.fail(ctx, "begin", err)
	}
	a.begun = time.Now()
	if err := a.insert(ctx); err != nil {
		return a.fail(ctx, "insert", err)
	}
	if err := a.readBack(ctx); err != nil {
		return a.fail(ctx, "select", err)
	}
	a.c.outcomes[a.seq] = inDoubt
	ct, err := a.conn.Exec(ctx, "commit")
	if err != nil {
		return a.fail(ctx, "commit", err)
	}
	if ct.String() != "COMMIT" {
		a.c.outcomes[a.seq] = failed
		a.cross(fmt.Sprintf("COMMIT answered %q: the transaction had failed unseen", ct.String()))
		return true
	}
	a.committed()
	return true
}

// alone runs the INSERT outside a transaction block: its own answer says
// whether the row exists.
func (a *attempt) alone(ctx context.Context) bool {
	a.c.outcomes[a.seq] = inDoubt
	if err := a.insert(ctx); err != nil {
		return a.fail(ctx, "insert", err)
	}
	a.committed()
	return true
}

// insert sends the attempt's INSERT: its values written into the text in
// the simple protocol, as parameters in the extended one; now and then
// padded past the read buffer (loadShape.large).
func (a *attempt) insert(ctx context.Context) error {
	l, id := a.l, a.c.id
	size := 0
	if l.shape.large > 0 && rand.IntN(l.shape.large) == 0 {
		size = chaosLargeSizes[rand.IntN(len(chaosLargeSizes))]
		l.long.Add(1)
	}
	var ct pgconn.CommandTag
	var err error
	if a.conn.Config().DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		sql := fmt.Sprintf("insert into %s (client, seq, tag) values (%d, %d, '%s')", l.table, id, a.seq, a.tag)
		ct, err = a.conn.Exec(ctx, padded(sql, size))
	} else {
		sql := "insert into " + l.table + " (client, seq, tag) values ($1, $2, $3)"
		ct, err = a.conn.Exec(ctx, padded(sql, size), id, a.seq, a.tag)
	}
	if err == nil && ct.String() != "INSERT 0 1" {
		a.cross(fmt.Sprintf("INSERT answered %q", ct.String()))
	}
	return err
}

// readBack selects the attempt's row inside its transaction, with its tag
// echoed as a parameter, and notes any result that is not its own.
func (a *attempt) readBack(ctx context.Context) error {
	var got, echo string
	err := a.conn.QueryRow(ctx, "select tag, $3::text from "+a.l.table+" where client = $1 and seq = $2",
		a.c.id, a.seq, a.tag).Scan(&got, &echo)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		a.cross("its own INSERT is not visible inside its transaction")
	case err != nil:
		return err
	default:
		if problem := checkOwn(a.tag, got, echo); problem != "" {
			a.cross(problem)
		}
	}
	return nil
}

// fail records err, which may decide an in-doubt outcome (afterError),
// and reports whether the connection is still usable, rolling back a
// transaction left open (an error of that ROLLBACK is recorded too).
func (a *attempt) fail(ctx context.Context, phase string, err error) bool {
	a.l.record(txnError{client: a.c.id, phase: phase, begun: a.begun, started: a.started, err: err})
	a.c.outcomes[a.seq] = afterError(a.c.outcomes[a.seq], err)
	if a.conn.IsClosed() {
		return false
	}
	if a.conn.PgConn().TxStatus() == 'I' {
		return true
	}
	if _, err := a.conn.Exec(ctx, "rollback"); err != nil {
		a.l.record(txnError{client: a.c.id, phase: "rollback", begun: a.begun, started: a.started, err: err})
		return false
	}
	return true
}

func (a *attempt) committed() {
	a.c.outcomes[a.seq] = committed
	a.l.commits.Add(1)
	if since := a.l.since.Load(); since != 0 && a.started.UnixNano() > since {
		a.l.firstOK.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (a *attempt) cross(problem string) { a.l.cross(a.c.id, a.seq, problem) }

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
