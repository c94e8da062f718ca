package app_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/faultnet"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// handOver gives old's clients to fresh in this process, as the takeover
// socket does between two: each client's socket is duplicated for fresh,
// and old's copy closes as its session ends there.
func handOver(t *testing.T, old, fresh *valvetest.Server) (went, ended int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return old.App.HandOver(ctx, func(conn net.Conn, h *session.Handoff) error {
		f, err := conn.(*net.TCPConn).File()
		if err != nil {
			return err
		}
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return err
		}
		fresh.App.Adopt(c, h)
		return nil
	})
}

// A client idle between transactions goes to the new process with its
// settings and its prepared statements, and the old one closes its copy
// of the socket without a word to it; a client holding a statement made
// by SQL PREPARE stays behind and is ended as in a shutdown (57P01).
func TestAClientHandedOverCarriesOnWithItsStateInTheNewProcess(t *testing.T) {
	old := valvetest.Start(t, txnConfig(2))
	fresh := valvetest.Start(t, txnConfig(2))
	ctx := testutil.Context(t)
	goes := testutil.Connect(t, old.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	if _, err := goes.Exec(ctx, "set application_name = 'moved'"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := goes.QueryRow(ctx, "select $1::int * 2", 21).Scan(&n); err != nil || n != 42 {
		t.Fatalf("before: %d, %v", n, err)
	}
	stays := testutil.Connect(t, old.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	if _, err := stays.Exec(ctx, "prepare p as select 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	went, ended := handOver(t, old, fresh)
	if went != 1 || ended != 1 {
		t.Fatalf("%d clients went and %d ended; want 1 and 1", went, ended)
	}
	var name string
	if err := goes.QueryRow(ctx, "select current_setting('application_name')").Scan(&name); err != nil || name != "moved" {
		t.Errorf("the setting after the handover: %q, %v", name, err)
	}
	if err := goes.QueryRow(ctx, "select $1::int * 2", 21).Scan(&n); err != nil || n != 42 {
		t.Errorf("the prepared statement after the handover: %d, %v", n, err)
	}
	if len(fresh.App.Sessions()) != 1 {
		t.Errorf("the new process lists %d sessions; want the client handed over", len(fresh.App.Sessions()))
	}
	_, err := stays.Exec(ctx, "execute p", pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
		t.Errorf("the client that stayed: %v; want 57P01", err)
	}
}

// The new process's pools start empty while the clients handed over
// already run transactions: a client that logs in then is greeted as soon
// as any server of its pool has logged in, not when a server is free, so
// it never waits for another client's transaction (here, one blocked on a
// lock held elsewhere for as long as the test likes).
func TestALoginInANewProcessDoesNotWaitForAHandedOverTransaction(t *testing.T) {
	admin := direct(t)
	ctx := testutil.Context(t)
	if _, err := admin.Exec(ctx, "select pg_advisory_lock(7)"); err != nil {
		t.Fatal(err)
	}
	relay, err := faultnet.New(net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	cfg := txnConfig(1)
	u, _ := url.Parse(cfg.Upstream)
	u.Host = relay.Addr()
	cfg.Upstream = u.String()
	old := valvetest.Start(t, txnConfig(1))
	fresh := valvetest.Start(t, cfg)
	moved := testutil.Connect(t, old.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
	if _, err := moved.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if went, _ := handOver(t, old, fresh); went != 1 {
		t.Fatalf("%d clients went", went)
	}
	relay.Pause() // the new pool's first server logs in only on Resume
	locked := make(chan error, 1)
	go func() { _, err := moved.Exec(ctx, "select pg_advisory_lock(7)"); locked <- err }()
	waiting := func(n int) func() bool {
		return func() bool {
			st, ok := fresh.PoolStats(pgtest.TestDatabase + "/" + cluster.User)
			return ok && st.ClientsWaiting >= n
		}
	}
	testutil.EventuallyWithin(t, 20*time.Second, "the handed-over client to wait for a server", waiting(1))
	greeted := make(chan error, 1)
	go func() {
		c, err := pgx.Connect(ctx, fresh.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
		if err == nil {
			c.Close(context.Background())
		}
		greeted <- err
	}()
	testutil.EventuallyWithin(t, 20*time.Second, "the new client's login to wait too", waiting(2))
	relay.Resume() // the server goes to the first in line: the transaction, which blocks on the lock
	select {
	case err := <-greeted:
		if err != nil {
			t.Fatalf("login: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the login waited for another client's transaction to end")
	}
	if _, err := admin.Exec(ctx, "select pg_advisory_unlock(7)"); err != nil {
		t.Fatal(err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("the handed-over client's transaction: %v", err)
	}
}
