package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// stopPostgres stops the test cluster for a while and makes sure it runs
// again when the test ends, whatever happens.
func stopPostgres(t *testing.T, mode string) (start func()) {
	t.Helper()
	if err := cluster.StopServer(mode); err != nil {
		t.Fatal(err)
	}
	started := false
	start = func() {
		if !started {
			started = true
			if err := cluster.StartServer(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(start)
	return start
}

// While PostgreSQL is down, clients queue instead of failing; when it is
// back they proceed, and pgvalve reconnects within about a second.
func TestClientsRideThroughAPostgresRestart(t *testing.T) {
	cfg := txnConfig(2)
	cfg.QueryWaitTimeout = 30 * time.Second
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	start := stopPostgres(t, "fast")
	s.WaitIdle(t, 10*time.Second)

	// A new client connects (pgvalve greets it) and its query waits.
	waiting := connectTx(t, url)
	done := make(chan error, 1)
	var answered time.Time
	go func() {
		_, err := waiting.Exec(ctx, "select 1")
		answered = time.Now()
		done <- err
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the query finished while PostgreSQL was down: %v", err)
	default:
	}
	start()
	up := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("a queued query must succeed once PostgreSQL is back: %v", err)
	}
	// Timed, not asserted: the machines are shared (RELIABILITY.md has numbers).
	t.Logf("answered %s after PostgreSQL accepted connections again", answered.Sub(up).Round(time.Millisecond))
	// The client whose server died mid-session can go on too.
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Logf("first query after the restart on the old client: %v", err)
	}
	s.WaitIdle(t, 10*time.Second)
}

func TestAWaitThatOutlastsAnOutageGets08006NamingTheServer(t *testing.T) {
	cfg := txnConfig(2)
	cfg.QueryWaitTimeout = 700 * time.Millisecond
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	stopPostgres(t, "immediate")
	s.WaitIdle(t, 10*time.Second)
	other := connectTx(t, url)
	_, err := other.Exec(ctx, "select 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" {
		t.Fatalf("want 08006, got %v", err)
	}
	if !strings.Contains(pgErr.Message, "127.0.0.1") {
		t.Fatalf("the message must name the server: %q", pgErr.Message)
	}
	t.Logf("client saw: %s", pgErr.Message)
}
