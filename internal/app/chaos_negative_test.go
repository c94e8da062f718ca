package app_test

// Each chaos invariant broken on purpose, to show its check can fail.

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/session"
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

// smallLoad runs a few clients against s until they committed n times.
func smallLoad(t *testing.T, s *valvetest.Server, table string, clients int, n int64) *chaosLoad {
	t.Helper()
	l := newChaosLoad(s.URL(cluster.User, cluster.Password, poolDB()), table, 10*time.Second)
	l.start(clients)
	t.Cleanup(l.stop)
	if !l.waitCommits(n, 30*time.Second) {
		l.stop()
		t.Fatalf("the load made no progress: %v", errorsBy(l.errors(), nil))
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
	l := smallLoad(t, s, table, 2, 20)
	if relay.Duplicated() != 1 {
		t.Fatalf("the relay duplicated %d statements", relay.Duplicated())
	}
	rows, err := readRows(testContext(t), admin, table)
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
	smallLoad(t, s, table, 4, 20)
	if skipped.Load() != 1 {
		t.Fatal("the knob never fired")
	}
	if err := checkIdle(testContext(t), s, admin, time.Second); err == nil {
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
	l := smallLoad(t, s, table, 4, 20)
	if errs := errorsBy(l.errors(), func(x txnError) bool { return x.client < chaosClients }); len(errs) == 0 {
		t.Fatal("a bystander's panic went unnoticed")
	} else {
		t.Logf("detected as intended: %v", errs)
	}
}
