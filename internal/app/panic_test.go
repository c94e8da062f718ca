package app_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// A panic inside one client's session ends that client only: it gets an
// error, its server goes back to the pool, and other clients on the same
// servers never notice; also a panic while the session's lock is held,
// where the statement tracker and the session-state detector run.
func TestAPanicInOneSessionEndsOnlyThatSession(t *testing.T) {
	boom := func(span []byte) {
		if bytes.Contains(span, []byte("boom_please")) {
			panic("injected panic")
		}
	}
	for name, knobs := range map[string]*session.Knobs{
		"before forwarding": {BeforeForward: boom},
		"under the lock":    {UnderLock: boom},
	} {
		t.Run(name, func(t *testing.T) { panicEndsOnlyItsSession(t, knobs) })
	}
}

func panicEndsOnlyItsSession(t *testing.T, knobs *session.Knobs) {
	s := valvetest.StartWithKnobs(t, txnConfig(2), knobs)
	url := s.URL(cluster.User, cluster.Password, poolDB())
	ctx := testutil.Context(t)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for id := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pgxClient(ctx, url, pgx.QueryExecModeCacheStatement, id)
		}()
	}
	victim := connectTx(t, url)
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select 'boom_please'"); err == nil {
		t.Fatal("the panicking session must end with an error")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("another client noticed the panic: %v", err)
		}
	}
	s.WaitIdle(t, 10*time.Second)
	c := connectTx(t, url)
	if _, err := c.Exec(context.Background(), "select 1"); err != nil {
		t.Fatal(err)
	}
}
