package app_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
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
	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.App.Shutdown(sctx)
	}()
	// New clients are refused as soon as the listener closes.
	testutil.EventuallyWithin(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", s.Addr.String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
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
