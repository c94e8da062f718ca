package app_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// sqlState is err's SQLSTATE, "" if it has none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// max_pinned_servers bounds the clients session state keeps on their
// servers: one pin too many is refused with 53400 before it runs, from
// a client outside a transaction (answered by pgvalve) and inside one
// (its transaction fails as PostgreSQL fails it), and the place is free
// again once the first client's state is gone.
func TestMaxPinnedServersRefusesOnePinTooMany(t *testing.T) {
	cfg := txnConfig(4)
	cfg.MaxPinnedServers = 1
	s, url := startValve(t, cfg)
	su := direct(t)
	first, second := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, first, "select pg_advisory_lock(501)")

	_, err := second.Exec(testutil.Context(t), "select pg_advisory_lock(502)")
	if sqlState(err) != "53400" {
		t.Fatalf("a second pin: %v; want 53400", err)
	}
	if lockHolder(t, su, 502) != 0 {
		t.Fatal("the refused lock was taken anyway")
	}
	testutil.MustExec(t, second, "begin")
	_, err = second.Exec(testutil.Context(t), "create temp table refused (id int)")
	if sqlState(err) != "53400" {
		t.Fatalf("a pin inside a transaction: %v; want 53400", err)
	}
	if _, err := second.Exec(testutil.Context(t), "select 1"); sqlState(err) != "25P02" {
		t.Fatalf("the transaction goes on after the refusal: %v; want 25P02", err)
	}
	testutil.MustExec(t, second, "rollback")
	if got := s.App.Stats()[0].Pinned; got != 1 {
		t.Errorf("the pool counts %d pinned clients, want 1", got)
	}

	testutil.MustExec(t, first, "select pg_advisory_unlock(501)")
	testutil.MustExec(t, second, "select pg_advisory_lock(502)")
	if lockHolder(t, su, 502) == 0 {
		t.Fatal("the lock was refused after the first client's pin ended")
	}
	testutil.MustExec(t, second, "select pg_advisory_unlock_all()")
	testutil.EventuallyWithin(t, 10*time.Second, "the pinned count to return to 0", func() bool {
		return s.App.Stats()[0].Pinned == 0
	})
}

// The default bound is half the pool: with a pool of 4, two clients may
// hold advisory locks and a third is refused.
func TestMaxPinnedServersDefaultsToHalfThePool(t *testing.T) {
	_, url := startValve(t, txnConfig(4))
	for i, want := range []string{"", "", "53400"} {
		c := connectTx(t, url)
		_, err := c.Exec(testutil.Context(t), "select pg_advisory_lock($1)", 600+i)
		if sqlState(err) != want {
			t.Fatalf("client %d: %v; want SQLSTATE %q", i, err, want)
		}
	}
}

// A prepared statement takes its lock each time it runs, not when it is
// prepared: pgx's statement cache sends the Parse once, and every later
// run is a Bind, which pgvalve must read as the statement it names.
func TestANamedStatementPinsEachTimeItRunsAndNotWhenPrepared(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	c := connectMode(t, url, pgx.QueryExecModeCacheStatement)
	ctx := testutil.Context(t)
	if _, err := c.Prepare(ctx, "never_run", "select pg_advisory_lock(700)"); err != nil {
		t.Fatal(err)
	}
	if pin := clientPin(t, s); pin != "" {
		t.Fatalf("a statement prepared and never run pins its client: %q", pin)
	}
	for _, key := range []int{701, 702} {
		if _, err := c.Exec(ctx, "select pg_advisory_lock($1)", key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "select pg_advisory_unlock($1)", 701); err != nil {
		t.Fatal(err)
	}
	holder := lockHolder(t, direct(t), 702)
	for range 10 {
		if pid := backendPID(t, c); pid != holder {
			t.Fatalf("with one of two locks released the client runs on %d, not on %d which holds the other", pid, holder)
		}
	}
	if _, err := c.Exec(ctx, "select pg_advisory_unlock($1)", 702); err != nil {
		t.Fatal(err)
	}
	if pin := clientPin(t, s); pin != "" {
		t.Fatalf("still pinned (%q) with every lock released", pin)
	}
}

// session_state = "pin-all" keeps a client on its server from its first
// session-level statement, a SET included, until it leaves; other
// clients keep changing servers.
func TestPinAllKeepsTheServerFromTheFirstSessionStatement(t *testing.T) {
	cfg := txnConfig(2)
	cfg.SessionState = config.StatePinAll
	s, url := startValve(t, cfg)
	stop := busy(t, url, 10)
	defer stop()
	c := connectTx(t, url)
	testutil.MustExec(t, c, "set work_mem = '8MB'")
	pid := backendPID(t, c)
	for range 20 {
		if got := backendPID(t, c); got != pid {
			t.Fatalf("a pin-all client moved from backend %d to %d", pid, got)
		}
	}
	if pin := clientPin(t, s); pin != "pin_all" {
		t.Errorf("the pin shows as %q, want pin_all", pin)
	}
	testutil.MustExec(t, c, "reset all")
	if pin := clientPin(t, s); pin != "pin_all" {
		t.Errorf("RESET ALL ended a pin-all pin (%q): only leaving ends it", pin)
	}
}

// session_state = "off" looks at nothing, as PgBouncer: an advisory lock
// pins no client and no listening connection is opened.
func TestSessionStateOffLooksAtNothing(t *testing.T) {
	cfg := txnConfig(1) // one server: the unlock at the end finds the lock
	cfg.SessionState = config.StateOff
	s, url := startValve(t, cfg)
	c := connectTx(t, url)
	testutil.MustExec(t, c, "select pg_advisory_lock(801)")
	testutil.MustExec(t, c, "listen off_channel")
	if pin := clientPin(t, s); pin != "" {
		t.Errorf("session_state off pinned the client: %q", pin)
	}
	if st := s.App.Stats()[0]; st.Pinned != 0 || st.Listeners != 0 {
		t.Errorf("session_state off: %d pinned, %d listening connections; want none", st.Pinned, st.Listeners)
	}
	testutil.MustExec(t, c, "select pg_advisory_unlock_all(); unlisten *")
}

// A pin shows with its cause where an operator looks: SHOW CLIENTS and
// SHOW HOLDERS name it, and /metrics counts the pool's pinned clients.
func TestAPinShowsInTheConsoleAndTheMetrics(t *testing.T) {
	s, url, admin := adminSetup(t, 2)
	c := connectTx(t, url+"&application_name=pinned_one")
	testutil.MustExec(t, c, "create temp table shown (id int)")
	for _, cmd := range []string{"SHOW CLIENTS", "SHOW HOLDERS"} {
		var pin string
		for _, row := range show(t, admin, cmd) {
			if row["application_name"] == "pinned_one" {
				pin = row["pinned"]
			}
		}
		if pin != "temp_table" {
			t.Errorf("%s shows the client's pin as %q, want temp_table", cmd, pin)
		}
	}
	srv := httptest.NewServer(metrics.NewHandler(s.App.Source()))
	defer srv.Close()
	want := fmt.Sprintf(`pgvalve_pool_pinned_clients{database=%q,user=%q} 1`, pgtest.TestDatabase, cluster.User)
	if body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, want) {
		t.Fatalf("/metrics lacks %s", want)
	}
	testutil.MustExec(t, c, "discard temp")
	if body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, strings.TrimSuffix(want, "1")+"0") {
		t.Fatal("/metrics still counts the client pinned after DISCARD TEMP")
	}
}

// A statement PREPAREd with SQL (pgx sends it as a simple query, and the
// EXECUTE through the extended protocol) works for its client in every
// later transaction, no other client can EXECUTE it, and it does not
// outlive the client on the server.
func TestASQLPreparedStatementStaysWithItsClientOnly(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	c := connectTx(t, url)
	testutil.MustExec(t, c, "prepare answer as select 42")
	for range 10 {
		var n int
		if err := c.QueryRow(testutil.Context(t), "execute answer").Scan(&n); err != nil || n != 42 {
			t.Fatalf("EXECUTE in a later transaction: %d, %v", n, err)
		}
	}
	other := connectTx(t, url)
	if _, err := other.Exec(testutil.Context(t), "execute answer"); sqlState(err) != "26000" {
		t.Fatalf("another client's EXECUTE: %v; want 26000", err)
	}
	if err := c.Close(testutil.Context(t)); err != nil {
		t.Fatal(err)
	}
	s.WaitIdle(t, 10*time.Second)
	for range 4 { // whichever server the next clients get
		n := connectTx(t, url)
		var found int
		if err := n.QueryRow(testutil.Context(t), "select count(*) from pg_prepared_statements where name = 'answer'").Scan(&found); err != nil || found != 0 {
			t.Fatalf("a later client finds the statement on its server: %d, %v", found, err)
		}
	}
}
