package app_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/faultnet"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// chaosEnv is one running scenario: pgvalve, its load and a superuser
// connection straight to PostgreSQL.
type chaosEnv struct {
	t      *testing.T
	s      *valvetest.Server
	admin  *pgx.Conn
	load   *chaosLoad
	before goleak.Option
	relay  *faultnet.Relay
}

// chaosOpts is what a scenario sets besides pgvalve's config.
type chaosOpts struct {
	knobs      *session.Knobs
	relay      *faultnet.Relay // between pgvalve and PostgreSQL, if any
	txnTimeout time.Duration   // each client transaction's deadline
	shape      loadShape
}

// startChaos starts pgvalve with cfg and o.knobs and 200 looping clients
// (o.shape) on a fresh table, and returns once every client could have
// committed once.
func startChaos(t *testing.T, name string, cfg config.Config, o chaosOpts) *chaosEnv {
	t.Helper()
	admin := direct(t)
	waitNoBackends(t, admin)
	table := chaosTable(t, admin, name)
	e := &chaosEnv{t: t, admin: admin, relay: o.relay, before: goleak.IgnoreCurrent()}
	cfg.AdminUsers = append(cfg.AdminUsers, "admin") // the checks read the console
	e.s = valvetest.StartWithKnobs(t, cfg, o.knobs)
	e.load = newChaosLoad(e.s.URL(cluster.User, cluster.Password, poolDB()), table, o.txnTimeout)
	e.load.shape = o.shape
	n := cmp.Or(o.shape.clients, chaosClients)
	e.load.start(n)
	t.Cleanup(e.load.stop) // a failed test still ends its clients
	e.progress("the load to get going", int64(n))
	return e
}

// progress waits for n more commits and fails the test if they never come.
func (e *chaosEnv) progress(what string, n int64) {
	e.t.Helper()
	if !e.load.waitCommits(n, 60*time.Second) {
		e.load.stop()
		st, _ := e.s.PoolStats(poolName())
		relay := -1
		if e.relay != nil {
			relay = e.relay.Conns()
		}
		e.t.Fatalf("no progress: waited 60s for %s (%d commits so far, errors %v, pool %+v, relayed conns %d)",
			what, e.load.commits.Load(), errorsBy(e.load.errors(), nil), st.Stats, relay)
	}
}

// finish stops the load, checks every invariant, stops pgvalve (and the
// relay) and checks for leaked goroutines.
func (e *chaosEnv) finish(extra string) chaosReport {
	e.t.Helper()
	e.load.stop()
	rep := e.load.verify(e.t, e.s, e.admin)
	e.s.Stop()
	if e.relay != nil {
		e.relay.Close()
	}
	if err := chaosLeaks(e.before); err != nil {
		e.t.Errorf("goroutines leaked: %v", err)
	}
	logReport(e.t, rep, extra)
	return rep
}

// chaosConfig is transaction pooling over the unix socket (trust, so the
// many re-dials skip SCRAM, which -race makes slow).
func chaosConfig(poolSize int) config.Config {
	cfg := txnConfig(poolSize)
	cfg.Upstream += "&host=" + url.QueryEscape(cluster.SocketDir)
	return cfg
}

// outageErrors reports errors that an outage from stopped (PostgreSQL
// told to stop) to restarted (told to start) does not excuse. Only
// transactions open when PostgreSQL went away may fail (at most inFlight:
// in transaction pooling each holds a server), and only with an answer: a
// client left hanging until its own timeout is a failure, and so is any
// error before the stop, any error of a transaction begun after the
// restart (queued ones must complete), and a queued client failed because
// the server it was given died while pgvalve prepared it for the client
// ("backend: exec": nothing of the client's had been sent, so pgvalve must
// take another).
func outageErrors(errs []txnError, stopped, restarted time.Time, inFlight int) []string {
	var bad []string
	during := 0
	for _, e := range errs {
		switch {
		case e.code == "timeout" && !e.begun.IsZero() && e.begun.Before(restarted):
			bad = append(bad, fmt.Sprintf("client %d: in flight at the stop, hung until its timeout in %s", e.client, e.phase))
		case e.err != nil && strings.Contains(e.err.Error(), "backend: exec"):
			bad = append(bad, fmt.Sprintf("client %d: queued, failed while pgvalve prepared its server: %v", e.client, e.err))
		case e.at.Before(stopped):
			bad = append(bad, fmt.Sprintf("client %d: %s error before PostgreSQL stopped: %v", e.client, e.phase, e.err))
		case !e.started.Before(restarted):
			bad = append(bad, fmt.Sprintf("client %d: %s error in a transaction begun after PostgreSQL was started again: %v", e.client, e.phase, e.err))
		case e.phase != "rollback": // its transaction has failed already
			during++
		}
	}
	if during > inFlight {
		bad = append(bad, fmt.Sprintf("%d transactions failed, but at most %d were in flight", during, inFlight))
	}
	return bad
}

// 1. PostgreSQL stopped and restarted under load: only the transactions in
// flight fail, the queued ones complete, and pgvalve serves again within
// moments of PostgreSQL accepting connections.
func TestChaosPostgresStoppedAndRestartedMidLoad(t *testing.T) {
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) { chaosOutage(t, mode) })
	}
}

func chaosOutage(t *testing.T, mode string) {
	outage := pick(2*time.Second, 5*time.Second)
	poolSize := pick(10, 20)
	cfg := chaosConfig(poolSize)
	cfg.QueryWaitTimeout = outage + 4*time.Second
	e := startChaos(t, "stop_"+mode, cfg, chaosOpts{txnTimeout: outage + 5*time.Second})
	e.progress("load before the stop", pick[int64](200, 2000))

	stopping := time.Now()
	start := stopPostgres(t, mode)
	down := time.Now()
	e.load.since.Store(down.UnixNano())
	time.Sleep(outage)
	restarting := time.Now()
	up := pollPostgres(t)
	start()
	upAt := <-up
	e.admin = direct(t) // the old one died with the server
	testutil.EventuallyWithin(t, 60*time.Second, "a commit after the restart", func() bool { return e.load.firstOK.Load() != 0 })
	recovery := time.Unix(0, e.load.firstOK.Load()).Sub(upAt)
	e.progress("load after the restart", pick[int64](200, 2000))
	e.load.stop() // so that errors of clients still hanging count too

	errs := e.load.errors()
	for _, x := range errs {
		t.Logf("client %d %s error %s after the stop began (in flight: %v): %s: %v", x.client, x.phase,
			x.at.Sub(stopping).Round(time.Millisecond), !x.begun.IsZero() && x.begun.Before(stopping), x.code, x.err)
	}
	for _, bad := range outageErrors(errs, stopping, restarting, poolSize) {
		t.Error(bad)
	}
	e.finish(fmt.Sprintf("stop=%s down-for=%s recovery=%s (first commit through pgvalve after PostgreSQL accepted connections again)",
		down.Sub(stopping).Round(time.Millisecond), upAt.Sub(down).Round(time.Millisecond), recovery.Round(time.Millisecond)))
}

// pollPostgres tries to connect straight to PostgreSQL every few
// milliseconds and sends the time of the first success.
func pollPostgres(t *testing.T) <-chan time.Time {
	up := make(chan time.Time, 1)
	u := cluster.URL(cluster.Superuser, cluster.SuperuserPassword(), pgtest.TestDatabase) +
		"&host=" + url.QueryEscape(cluster.SocketDir)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := pgconn.Connect(ctx, u)
			cancel()
			if err == nil {
				at := time.Now()
				_ = c.Close(context.Background())
				up <- at
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		up <- time.Now()
	}()
	return up
}

// 2. Random server backends terminated with pg_terminate_backend. Besides
// the transactions, one in four is a lone INSERT: one whose server was
// killed under it either succeeded, or says it may have run, or did not
// happen. Then the same with statements longer than the read buffer in
// the extended protocol, with pgx's statement cache (pgvalve prepares on
// new servers while servers die), and with long simple queries (the
// parts that found the two defects in RELIABILITY.md).
func TestChaosServerBackendsTerminatedMidLoad(t *testing.T) {
	for _, s := range []struct {
		name  string
		shape loadShape
	}{
		{"short statements", loadShape{alone: 4}},
		{"long statements, unnamed", loadShape{modes: []pgx.QueryExecMode{pgx.QueryExecModeExec}, alone: 4, large: 8}},
		{"named statements", loadShape{modes: []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement}, alone: 4}},
		{"long simple queries", loadShape{modes: []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol}, large: 2}},
	} {
		t.Run(s.name, func(t *testing.T) { chaosTerminate(t, s.shape) })
	}
}

func chaosTerminate(t *testing.T, shape loadShape) {
	e := startChaos(t, "terminate", chaosConfig(pick(10, 20)), chaosOpts{txnTimeout: 5 * time.Second, shape: shape})
	ctx := testutil.Context(t)
	kills := 0
	for end := time.Now().Add(pick(3*time.Second, 20*time.Second)); time.Now().Before(end); {
		var n int
		err := e.admin.QueryRow(ctx, `select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
			where usename = $1 and backend_type = 'client backend' order by random() limit 1) t`, cluster.User).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		kills += n
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
	}
	e.progress("load after the kills", pick[int64](200, 2000))
	e.load.stop()
	// A client whose server was killed gets an answer at once (the
	// COMMIT's own, or an error).
	for _, x := range e.load.errors() {
		// In transaction pooling a killed server costs its client the
		// transaction, never the connection.
		var pgErr *pgconn.PgError
		if errors.As(x.err, &pgErr) && pgErr.Severity != "ERROR" {
			t.Errorf("client %d: %s in %s; want an ERROR the client can go on from", x.client, pgErr.Severity, x.phase)
		}
		if x.code == "timeout" && !x.begun.IsZero() {
			t.Errorf("client %d: hung in %s until its deadline", x.client, x.phase)
		}
	}
	e.finish(fmt.Sprintf("backends-terminated=%d", kills))
}

// 3. Clients killed mid-transaction, mid-statement and mid-COPY, beside
// COPYs that complete: the 200 other clients, sending statements longer
// than the read buffer now and then (largeMix), see no error at all.
func TestChaosClientsKilledMidTransactionAndMidCopy(t *testing.T) {
	e := startChaos(t, "killed", chaosConfig(pick(10, 20)), chaosOpts{txnTimeout: 20 * time.Second, shape: largeMix})
	end := time.Now().Add(pick(3*time.Second, 20*time.Second))
	killers := make(chan map[string]int, 8)
	for k := range 8 {
		c := e.load.register(100000 + k)
		go func() { killers <- e.load.killer(c, end) }()
	}
	kinds := map[string]int{}
	for range 8 {
		for kind, n := range <-killers {
			kinds[kind] += n
		}
	}
	e.progress("load after the kills", pick[int64](200, 2000))
	if errs := errorsBy(e.load.errors(), func(x txnError) bool { return x.client < chaosClients }); len(errs) > 0 {
		t.Errorf("clients that were not killed saw errors: %v", errs)
	}
	e.finish(fmt.Sprintf("killed=%v", kinds))
}

// killer connects, starts work and kills its own connection, until end.
// It records the rows it tried under its own client id.
func (l *chaosLoad) killer(c *chaosClient, end time.Time) map[string]int {
	kinds := map[string]int{}
	for time.Now().Before(end) {
		kind := []string{"mid-transaction", "mid-statement", "mid-copy", "copy-completed"}[rand.IntN(4)]
		if err := l.kill(c, kind); err != nil {
			l.record(txnError{client: c.id, phase: kind, err: err})
		}
		kinds[kind]++
	}
	return kinds
}

func (l *chaosLoad) kill(c *chaosClient, kind string) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	pc, err := pgconn.Connect(ctx, l.url)
	if err != nil {
		return err
	}
	defer pc.Conn().Close()
	// rows returns n new seqs of c, all failed until proven otherwise,
	// as COPY text lines.
	rows := func(n int) []byte {
		var b bytes.Buffer
		for range n {
			seq := len(c.outcomes)
			c.outcomes = append(c.outcomes, failed)
			fmt.Fprintf(&b, "%d\t%d\t%s\n", c.id, seq, l.tag(c.id, seq))
		}
		return b.Bytes()
	}
	insert := func() string {
		seq := len(c.outcomes)
		c.outcomes = append(c.outcomes, failed)
		return fmt.Sprintf("insert into %s (client, seq, tag) values (%d, %d, '%s')", l.table, c.id, seq, l.tag(c.id, seq))
	}
	switch kind {
	case "mid-transaction":
		if _, err := pc.Exec(ctx, "begin; "+insert()).ReadAll(); err != nil {
			return err
		}
	case "mid-statement":
		if _, err := pc.Exec(ctx, "begin").ReadAll(); err != nil {
			return err
		}
		hc, err := testutil.Hijack(ctx, pc)
		if err != nil {
			return err
		}
		hc.Frontend.SendQuery(&pgproto3.Query{String: insert() + "; select pg_sleep(0.05)"})
		if err := hc.Frontend.Flush(); err != nil {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
	case "mid-copy":
		hc, err := testutil.Hijack(ctx, pc)
		if err != nil {
			return err
		}
		hc.Frontend.SendQuery(&pgproto3.Query{String: "copy " + l.table + " (client, seq, tag) from stdin"})
		if err := hc.Frontend.Flush(); err != nil {
			return err
		}
		for {
			msg, err := hc.Frontend.Receive()
			if err != nil {
				return err
			}
			if _, ok := msg.(*pgproto3.CopyInResponse); ok {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				return fmt.Errorf("copy: %s %s", e.Code, e.Message)
			}
		}
		hc.Frontend.Send(&pgproto3.CopyData{Data: rows(1 + rand.IntN(20))})
		if err := hc.Frontend.Flush(); err != nil {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
	case "copy-completed":
		first := len(c.outcomes)
		data := rows(1 + rand.IntN(20))
		ct, err := pc.CopyFrom(ctx, bytes.NewReader(data), "copy "+l.table+" (client, seq, tag) from stdin")
		for seq := first; seq < len(c.outcomes); seq++ {
			switch {
			case err == nil:
				c.outcomes[seq] = committed
			case pc.IsClosed():
				c.outcomes[seq] = inDoubt
			}
		}
		if err != nil {
			return err
		}
		if want := int64(len(c.outcomes) - first); ct.RowsAffected() != want {
			l.cross(c.id, first, fmt.Sprintf("COPY answered %q for %d rows", ct.String(), want))
		}
		l.commits.Add(1)
		return pc.Close(ctx)
	}
	return nil // the deferred close kills it
}

// 4. The network between pgvalve and PostgreSQL stalls, is cut, refuses
// new connections, and stalls past the clients' timeout: clients give up
// (pgx cancels, then sends Terminate and waits for the close) while their
// requests are queued, and pgvalve must drop those requests, not serve
// departed clients first while the live ones time out behind them.
func TestChaosNetworkStalledAndCutBetweenValveAndPostgres(t *testing.T) { chaosNetwork(t) }

func chaosNetwork(t *testing.T) {
	relay, err := faultnet.New(net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	cfg := txnConfig(pick(10, 20))
	u, err := url.Parse(cfg.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = relay.Addr()
	cfg.Upstream = u.String()
	cfg.QueryWaitTimeout = 30 * time.Second
	cfg.ServerConnectTimeout = 2 * time.Second
	txnTimeout := 4 * time.Second
	e := startChaos(t, "network", cfg, chaosOpts{relay: relay, txnTimeout: txnTimeout})
	steps := []struct {
		name string
		do   func()
	}{
		{"stall", func() {
			relay.Pause()
			time.Sleep(pick(500*time.Millisecond, 2*time.Second))
			relay.Resume()
		}},
		{"cut", func() { relay.Cut() }},
		{"refuse and cut", func() {
			relay.Refuse(true)
			relay.Cut()
			time.Sleep(pick(300*time.Millisecond, 2*time.Second))
			relay.Refuse(false)
		}},
		{"stall then cut", func() {
			relay.Pause()
			time.Sleep(pick(200*time.Millisecond, time.Second))
			relay.Cut()
			relay.Resume()
		}},
	}
	steps = append(steps, struct {
		name string
		do   func()
	}{"stall past the clients' timeout", func() {
		relay.Pause()
		time.Sleep(txnTimeout + time.Second)
		relay.Resume()
	}})
	for _, step := range steps {
		step.do()
		e.progress("load after "+step.name, pick[int64](100, 1000))
	}
	e.finish(fmt.Sprintf("steps=%d", len(steps)))
}

// 5. A panic injected into one client's session: that client gets an
// error, none of the 200 others notices.
func TestChaosPanicInOneSessionMidLoad(t *testing.T) {
	const marker = "chaos_panic_now"
	knobs := &session.Knobs{BeforeForward: func(span []byte) {
		if bytes.Contains(span, []byte(marker)) {
			panic("injected chaos panic")
		}
	}}
	e := startChaos(t, "panic", chaosConfig(pick(10, 20)), chaosOpts{knobs: knobs, txnTimeout: 20 * time.Second})
	victim := e.load.register(100000)
	panics := pick(3, 20)
	for i := range panics {
		if err := e.load.victim(victim, marker); err != nil {
			t.Fatalf("victim %d: %v", i, err)
		}
		e.progress("load after a panic", 50)
	}
	if errs := errorsBy(e.load.errors(), func(x txnError) bool { return x.client < chaosClients }); len(errs) > 0 {
		t.Errorf("other clients noticed the panic: %v", errs)
	}
	e.finish(fmt.Sprintf("panics=%d", panics))
}

// victim opens a transaction, inserts, and sends a statement that makes
// its session panic; it must get an error.
func (l *chaosLoad) victim(c *chaosClient, marker string) error {
	conn, err := l.connect(pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	defer closeQuietly(conn)
	ctx, cancel := context.WithTimeout(context.Background(), l.txnTimeout)
	defer cancel()
	seq := len(c.outcomes)
	c.outcomes = append(c.outcomes, failed)
	if _, err := conn.Exec(ctx, fmt.Sprintf("begin; insert into %s (client, seq, tag) values (%d, %d, '%s')",
		l.table, c.id, seq, l.tag(c.id, seq))); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "select '"+marker+"'"); err == nil {
		return fmt.Errorf("the panicking session answered without an error")
	} else {
		l.record(txnError{client: c.id, phase: "panic", err: err})
	}
	return nil
}
