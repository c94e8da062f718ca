package app_test

// Each chaos invariant broken on purpose, to show its check can fail.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/faultnet"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

func TestChaosOwnResultCheckCatchesASwappedResult(t *testing.T) {
	l := newChaosLoad("", "t", time.Second)
	mine, theirs := l.tag(1, 7), l.tag(2, 7)
	if p := checkOwn(mine, mine, mine); p != "" {
		t.Fatalf("a client's own result flagged: %s", p)
	}
	if p := checkOwn(mine, theirs, mine); p == "" {
		t.Fatal("another client's row went unnoticed")
	}
	if p := checkOwn(mine, mine, theirs); p == "" {
		t.Fatal("another client's echo went unnoticed")
	}
}

func TestChaosRowCheckCatchesForgedTables(t *testing.T) {
	l := newChaosLoad("", "t", time.Second)
	clients := []*chaosClient{{id: 1, outcomes: []outcome{committed, failed, inDoubt, inDoubt}}}
	good := []chaosRow{{1, 0, l.tag(1, 0), 1}, {1, 2, l.tag(1, 2), 1}}
	if r := checkRows(clients, good, l.tag); len(r.violations) != 0 || r.rows != 2 || r.inDoubtPresent != 1 {
		t.Fatalf("a consistent table flagged: %+v", r)
	}
	for name, tc := range map[string]struct {
		rows []chaosRow
		want string
	}{
		"a lost commit":            {[]chaosRow{{1, 2, l.tag(1, 2), 1}}, "missing"},
		"a failed row committed":   {append(good, chaosRow{1, 1, l.tag(1, 1), 1}), "failed transaction"},
		"a replayed insert":        {[]chaosRow{{1, 0, l.tag(1, 0), 2}}, "replayed"},
		"an in-doubt row twice":    {append(good, chaosRow{1, 3, l.tag(1, 3), 2}), "replayed"},
		"a row nobody wrote":       {append(good, chaosRow{9, 0, l.tag(9, 0), 1}), "no client wrote"},
		"another client's tag":     {[]chaosRow{{1, 0, l.tag(2, 0), 1}}, "no client wrote"},
		"a seq the client skipped": {append(good, chaosRow{1, 99, l.tag(1, 99), 1}), "no client wrote"},
	} {
		r := checkRows(clients, tc.rows, l.tag)
		if !strings.Contains(strings.Join(r.violations, "\n"), tc.want) {
			t.Errorf("%s: violations %q lack %q", name, r.violations, tc.want)
		}
	}
}

func TestChaosOutageCheckCatchesErrorsOutsideTheOutage(t *testing.T) {
	t0 := time.Now()
	stopped, restarted := t0.Add(time.Second), t0.Add(3*time.Second)
	// failed: a transaction started at start failed at at.
	failed := func(start, at time.Duration) txnError {
		return txnError{started: t0.Add(start), at: t0.Add(at), code: "08006"}
	}
	open := failed(900*time.Millisecond, time.Second) // open at the stop, failed then
	toldLater := failed(900*time.Millisecond, 4*time.Second)
	if bad := outageErrors([]txnError{open, toldLater}, stopped, restarted, 2); len(bad) != 0 {
		t.Fatalf("errors of transactions open at the stop flagged: %v", bad)
	}
	hung := txnError{started: t0.Add(time.Second / 2), at: t0.Add(5 * time.Second), code: "timeout", begun: t0.Add(time.Second / 2)}
	prepared := open
	prepared.err = errors.New("could not connect to the server: backend: exec: EOF")
	for name, errs := range map[string][]txnError{
		"before the stop":                         {failed(0, 500*time.Millisecond)},
		"a transaction begun after the restart":   {failed(3500*time.Millisecond, 4*time.Second)},
		"more than were in flight":                {open, open, toldLater},
		"a client left hanging":                   {hung},
		"a server that died while being prepared": {prepared},
	} {
		if bad := outageErrors(errs, stopped, restarted, 2); len(bad) == 0 {
			t.Errorf("%s went unnoticed", name)
		}
	}
}

func TestChaosLeakCheckCatchesALeakedGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	release := make(chan struct{})
	go func() { <-release }()
	err := chaosLeaks(before)
	close(release)
	if err == nil {
		t.Fatal("a leaked goroutine went unnoticed")
	}
}

// smallLoad runs a few clients (shape.clients) against s until they
// committed n times.
func smallLoad(t *testing.T, s *valvetest.Server, table string, shape loadShape, n int64) *chaosLoad {
	t.Helper()
	return smallLoadUntil(t, s, table, shape, n, nil)
}

// smallLoadUntil is smallLoad that also goes on until done holds: the
// clients' pace differs, so n commits alone may not reach a given one.
func smallLoadUntil(t *testing.T, s *valvetest.Server, table string, shape loadShape, n int64, done func() bool) *chaosLoad {
	t.Helper()
	l := newChaosLoad(s.URL(cluster.User, cluster.Password, poolDB()), table, 10*time.Second)
	l.shape = shape
	l.start(shape.clients)
	t.Cleanup(l.stop)
	if !l.waitCommits(n, 30*time.Second) {
		l.stop()
		t.Fatalf("the load made no progress: %v", errorsBy(l.errors(), nil))
	}
	if done != nil {
		testutil.EventuallyWithin(t, 30*time.Second, "the load to reach the statement the test waits for", done)
	}
	l.stop()
	return l
}

// A network that sends one INSERT twice (and hides the second answer from
// pgvalve) is exactly a pooler replaying a statement: the row check sees it.
func TestChaosRowCheckCatchesAStatementReplayedByTheNetwork(t *testing.T) {
	admin := direct(t)
	table := chaosTable(t, admin, "replay")
	relay, err := faultnet.New(net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	cfg := txnConfig(2)
	u, _ := url.Parse(cfg.Upstream)
	u.Host = relay.Addr()
	cfg.Upstream = u.String()
	s := valvetest.Start(t, cfg)
	// Client 0 speaks the simple protocol: its INSERT is one message.
	relay.DuplicateNext([]byte("insert into " + table + " (client, seq, tag) values (0, 3,"))
	l := smallLoadUntil(t, s, table, loadShape{clients: 2}, 20, func() bool { return relay.Duplicated() > 0 })
	if relay.Duplicated() != 1 {
		t.Fatalf("the relay duplicated %d statements", relay.Duplicated())
	}
	rows, err := readRows(testutil.Context(t), admin, table)
	if err != nil {
		t.Fatal(err)
	}
	r := checkRows(l.mu.clients, rows, l.tag)
	if !strings.Contains(strings.Join(r.violations, "\n"), "replayed") {
		t.Fatalf("a replayed INSERT went unnoticed: %+v", r)
	}
	t.Logf("detected as intended: %v", r.violations)
}

// A lease never released leaves the pool busy: the idle check sees it.
func TestChaosIdleCheckCatchesALeaseNotReleased(t *testing.T) {
	admin := direct(t)
	waitNoBackends(t, admin)
	table := chaosTable(t, admin, "unreleased")
	var skipped atomic.Int32
	knobs := &session.Knobs{SkipRelease: func() bool { return skipped.CompareAndSwap(0, 1) }}
	s := valvetest.StartWithKnobs(t, chaosConfig(4), knobs)
	smallLoad(t, s, table, loadShape{clients: 4}, 20)
	if skipped.Load() != 1 {
		t.Fatal("the knob never fired")
	}
	if err := checkIdle(testutil.Context(t), s, admin, time.Second); err == nil {
		t.Fatal("a lease that was never released went unnoticed")
	} else {
		t.Logf("detected as intended: %v", err)
	}
	// The dropped lease's server must not outlive pgvalve: later tests
	// count backends.
	s.Stop()
	waitNoBackends(t, admin)
}

// A panic in the wrong session reaches one of the load's clients: the
// check that no other client noticed sees it.
func TestChaosOthersNoticeCheckCatchesAPanicInTheWrongSession(t *testing.T) {
	admin := direct(t)
	table := chaosTable(t, admin, "wrongpanic")
	var fired atomic.Bool
	knobs := &session.Knobs{BeforeForward: func(span []byte) {
		if bytes.Contains(span, []byte("insert into "+table)) && fired.CompareAndSwap(false, true) {
			panic("injected panic in a bystander's session")
		}
	}}
	s := valvetest.StartWithKnobs(t, chaosConfig(2), knobs)
	l := smallLoad(t, s, table, loadShape{clients: 4}, 20)
	if errs := errorsBy(l.errors(), func(x txnError) bool { return x.client < chaosClients }); len(errs) == 0 {
		t.Fatal("a bystander's panic went unnoticed")
	} else {
		t.Logf("detected as intended: %v", errs)
	}
}

// An error whose row exists is a failure, unless the error says the
// statement may have run (or no answer came at all): the 08006 of the
// long-query defect ("server answer does not match the messages sent")
// did not say so, and its row existed.
func TestChaosInDoubtCheckCatchesAnErrorWhoseRowExists(t *testing.T) {
	l := newChaosLoad("", "t", time.Second)
	for _, tc := range []struct {
		name string
		err  error
		want outcome
	}{
		{"a server lost under the statement, said so", lostUnder, inDoubt},
		{"no answer before the client's own deadline", fmt.Errorf("timeout: %w", context.DeadlineExceeded), inDoubt},
		{"the long-query defect's 08006", &pgconn.PgError{Code: "08006",
			Message: "server connection lost: server answer does not match the messages sent: 'C' with nothing pending"}, failed},
		{"a refusal", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}, failed},
	} {
		got := afterError(inDoubt, tc.err)
		if got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
		clients := []*chaosClient{{id: 1, outcomes: []outcome{got}}}
		r := checkRows(clients, []chaosRow{{1, 0, l.tag(1, 0), 1}}, l.tag)
		if flagged := len(r.violations) > 0; flagged != (tc.want == failed) {
			t.Errorf("%s, and its row exists: violations %q", tc.name, r.violations)
		}
	}
}

// lostUnder is what pgvalve answers for a request whose server it lost.
var lostUnder = &pgconn.PgError{Code: "08006",
	Message: "server connection lost: EOF; the statement may have run; it was not sent again"}

func TestChaosDefectCheckCatchesAVanishedStatement(t *testing.T) {
	recorded := func(err error) txnError { return txnError{client: 3, phase: "select", code: errorCode(err), err: err} }
	clean := []txnError{
		recorded(lostUnder),
		recorded(&pgconn.PgError{Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}),
		recorded(fmt.Errorf("timeout: %w", context.DeadlineExceeded)),
	}
	if bad := defectErrors(clean); len(bad) != 0 {
		t.Fatalf("errors a fault explains flagged: %v", bad)
	}
	for name, err := range map[string]*pgconn.PgError{
		"a statement gone (26000)":     {Code: "26000", Message: `prepared statement "stmtcache_1f2e" does not exist`},
		"pgvalve's own name":           {Code: "42P05", Message: `prepared statement "pgv_17" already exists`},
		"pgvalve lost track":           {Code: "08006", Message: "server connection lost: server answer does not match the messages sent: 'C' with nothing pending; the statement may have run; it was not sent again"},
		"bytes that were not messages": {Code: "08006", Message: "server connection lost: FATAL: invalid frontend message type 120 (SQLSTATE 08P01); the statement may have run; it was not sent again"},
	} {
		if bad := defectErrors([]txnError{recorded(err)}); len(bad) != 1 {
			t.Errorf("%s went unnoticed", name)
		}
	}
}

// Without statement tracking (max_prepared_statements = 0) another
// client's DEALLOCATE ALL reaches a client's statements on the one shared
// server, as every client's did before the fix: its next transaction gets
// 26000, and the check sees it. With tracking, the same steps pass.
func TestChaosStatementCheckCatchesADeallocateThatReachesAnotherClient(t *testing.T) {
	admin := direct(t)
	table := chaosTable(t, admin, "deallocated")
	for _, tracking := range []int{200, 0} {
		t.Run(fmt.Sprintf("max_prepared_statements=%d", tracking), func(t *testing.T) {
			cfg := chaosConfig(1)
			cfg.MaxPreparedStatements = tracking
			s := valvetest.Start(t, cfg)
			l := newChaosLoad(s.URL(cluster.User, cluster.Password, poolDB()), table, 10*time.Second)
			c := l.register(0)
			conn := l.mustConnect(t, pgx.QueryExecModeCacheStatement)
			vandal := l.mustConnect(t, pgx.QueryExecModeSimpleProtocol)
			l.txn(conn, c)
			if err := extended(testutil.Context(t), vandal, "DEALLOCATE ALL"); err != nil {
				t.Fatal(err)
			}
			l.txn(conn, c)
			bad := defectErrors(l.errors())
			switch {
			case tracking > 0 && (len(l.errors()) > 0 || !slices.Equal(c.outcomes, []outcome{committed, committed})):
				t.Fatalf("with tracking on: outcomes %v, errors %v", c.outcomes, l.errors())
			case tracking == 0 && len(bad) == 0:
				t.Fatalf("a statement dropped by another client went unnoticed: %v", l.errors())
			case tracking == 0:
				t.Logf("detected as intended: %v", bad)
			}
		})
	}
}

// mustConnect connects a client of l, closed when the test ends.
func (l *chaosLoad) mustConnect(t *testing.T, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	conn, err := l.connect(mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeQuietly(conn) })
	return conn
}

// With the statement tracker made to skip streamed messages again (the
// defect behind the long-query report), lone INSERTs longer than the read
// buffer run and answer 08006: the checks see errors where nothing broke,
// and pgvalve losing track of the protocol. (The row check alone would
// not: pgvalve's 08006 now says the statement may have run.)
func TestChaosLongStatementChecksCatchTheTrackerSkippingStreamedMessages(t *testing.T) {
	admin := direct(t)
	table := chaosTable(t, admin, "streamed")
	cfg := chaosConfig(2)
	cfg.SessionState = config.StateOff // a long Query streams through the tracker, as in the report
	s := valvetest.StartWithKnobs(t, cfg, &session.Knobs{SkipStreamedBookkeeping: true})
	simple := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol}
	l := smallLoad(t, s, table, loadShape{clients: 2, modes: simple, alone: 1, large: 1}, 5)
	if len(l.errors()) == 0 {
		t.Fatal("no client saw an error")
	}
	bad := defectErrors(l.errors())
	if !strings.Contains(strings.Join(bad, "\n"), "lost track of the protocol") {
		t.Fatalf("the streamed INSERTs' 08006 went unnoticed: %v", errorsBy(l.errors(), nil))
	}
	t.Logf("detected as intended: %s", bad[0])
}
