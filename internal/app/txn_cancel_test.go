package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestTransactionModeCancelReachesTheServerTheClientHoldsNow(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	c := connectTx(t, url)
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = c.PgConn().CancelRequest(context.Background())
	}()
	_, err := c.Exec(ctx, "select pg_sleep(20)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("want 57014 query_canceled, got %v", err)
	}
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("the client goes on after a cancel: %v", err)
	}
}

// A client that holds no server has nothing to cancel. On a pool of one,
// its late cancels race with the next client taking the server; they must
// never cancel that client's query.
func TestALateCancelNeverHitsTheNextClientOfTheServer(t *testing.T) {
	s, url := startValve(t, txnConfig(1))
	ctx := testutil.Context(t)
	canceller := connectTx(t, url)
	victim := connectTx(t, url)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// The cancel is looked up while the query may still hold the
			// server, and delivered around the moment it goes back.
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = canceller.PgConn().CancelRequest(ctx)
			}()
			_, _ = canceller.Exec(ctx, "select 1")
			<-done
		}
	}()
	for i := range 500 {
		if _, err := victim.Exec(ctx, "select pg_sleep(0.002)"); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("query %d of the other client was hit: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	s.WaitIdle(t, 5*time.Second)
}
