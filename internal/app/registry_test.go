package app_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

func TestASessionIsListedWhileConnectedWithItsServerAndUnlistedAfter(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	ctx := testutil.Context(t)
	if got := s.App.Sessions(); len(got) != 0 {
		t.Fatalf("sessions before any client: %+v", got)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "registry-test"
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	one := func() app.SessionInfo {
		t.Helper()
		list := s.App.Sessions()
		if len(list) != 1 {
			t.Fatalf("sessions = %+v, want one", list)
		}
		return list[0]
	}
	got := one()
	if got.ID == 0 || got.User != cluster.User || got.Database != pgtest.TestDatabase ||
		got.ApplicationName != "registry-test" || got.Remote != conn.PgConn().Conn().LocalAddr().String() {
		t.Errorf("listed as %+v", got)
	}
	if got.State != session.Idle || got.ServerPID != 0 || got.Connected.IsZero() {
		t.Errorf("between transactions: %+v, want idle without a server", got)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if err := tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if got := one(); got.State != session.Active || got.ServerPID != pid || got.Since.Before(got.Connected) {
		t.Errorf("inside a transaction on server %d: %+v", pid, got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, 5*time.Second, "the server to go back", func() bool {
		got := s.App.Sessions()
		return len(got) == 1 && got[0].State == session.Idle && got[0].ServerPID == 0
	})

	// A second client, still logging in, is listed too, after the first.
	raw, err := net.Dial("tcp", s.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	testutil.EventuallyWithin(t, 5*time.Second, "the raw client to be listed", func() bool {
		list := s.App.Sessions()
		return len(list) == 2 && list[1].ID > list[0].ID && list[1].State == session.LoggingIn && list[1].User == ""
	})
	raw.Close()
	conn.Close(ctx)
	testutil.EventuallyWithin(t, 5*time.Second, "every session to be unlisted", func() bool { return len(s.App.Sessions()) == 0 })
}
