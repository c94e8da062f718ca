package app_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

func TestShutdownLetsARunningTransactionFinishAndEndsIdleClients(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	inTx := connectTx(t, url)
	idle := connectTx(t, url)
	if _, err := idle.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	tx, err := inTx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "create temp table drained(x int)"); err != nil {
		t.Fatal(err)
	}
	shutdown := startShutdown(t, s) // new clients are refused from here on
	// The idle client was ended with 57P01.
	_, err = idle.Exec(ctx, "select 1")
	if err == nil {
		t.Fatal("an idle client must be ended by the shutdown")
	}
	// The transaction still runs to its end.
	if _, err := tx.Exec(ctx, "insert into drained values (1)"); err != nil {
		t.Fatalf("a running transaction must be allowed to finish: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during shutdown: %v", err)
	}
	select {
	case <-shutdown:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return once the last transaction ended")
	}
	if _, err := inTx.Exec(ctx, "select 1"); err == nil {
		t.Fatal("after its transaction the client must be ended too")
	}
}

func TestShutdownTimeoutClosesTransactionsThatDoNotFinish(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s.App.Shutdown(sctx) // returns after the timeout, having closed the client
	_, err = tx.Exec(ctx, "select 1")
	if err == nil {
		t.Fatal("a transaction still open at the shutdown timeout must be cut")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code != "57P01" && pgErr.Code != "08006" {
		t.Fatalf("unexpected error %v", err)
	}
}

func TestCloseEndsEveryClientAtOnce(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.App.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a transaction")
	}
	if _, err := tx.Exec(ctx, "select 1"); err == nil {
		t.Fatal("Close must end clients inside a transaction")
	}
}

// A pinned client that commits during a shutdown hears its COMMIT's answer
// before it is ended, even when the server side has counted that answer
// and not yet written it as the drain wakes the client side: ending the
// link then once cut the write short, and a transaction that committed
// was reported as failed. The knob holds that write.
func TestADrainedPinnedClientHearsItsCommitBeforeItEnds(t *testing.T) {
	readyIdle := []byte{'Z', 0, 0, 0, 5, 'I'}
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	runSetup(t, owner, "drop table if exists drained_commit; create table drained_commit (v int)")
	var armed, held atomic.Bool
	knobs := &session.Knobs{BeforeDeliver: func(span []byte) {
		if armed.Load() && bytes.HasSuffix(span, readyIdle) && held.CompareAndSwap(false, true) {
			time.Sleep(time.Second)
		}
	}}
	s := valvetest.StartWithKnobs(t, txnConfig(2), knobs)
	ctx := testutil.Context(t)
	c := connectTx(t, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "create temp table pinned_commit(x int); insert into drained_commit values (1)"); err != nil {
		t.Fatal(err) // the temp table pins the client to its server
	}
	shutdown := startShutdown(t, s)
	armed.Store(true)
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("a COMMIT that ran is reported as failed: %v", err)
	}
	if !held.Load() {
		t.Fatal("the knob never held the COMMIT's answer: the test proves nothing")
	}
	<-shutdown
	var rows int
	if err := direct(t).QueryRow(ctx, "select count(*) from drained_commit").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("rows committed: %d (%v), want the one the client was told of", rows, err)
	}
}

// startShutdown starts a graceful shutdown of s (20 s at most) and
// returns once its listener refuses new clients; the channel closes when
// Shutdown returns.
func startShutdown(t *testing.T, s *valvetest.Server) <-chan struct{} {
	t.Helper()
	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.App.Shutdown(sctx)
	}()
	testutil.EventuallyWithin(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", s.Addr.String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	return shutdown
}
