package frontend

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/session"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOnlyConsoleDatabasesGoToTheConsoleAndOnlyWhenThereIsOne(t *testing.T) {
	serve := func(context.Context, session.Client) error { return nil }
	for _, tc := range []struct {
		db      string
		console bool
		want    bool
	}{
		{"pgbouncer", true, true},
		{"pgvalve", true, true},
		{"app", true, false},
		{"PGBOUNCER", true, false}, // database names are case-sensitive
		{"pgbouncer", false, false},
		{"pgvalve", false, false},
	} {
		cfg := &Config{}
		if tc.console {
			cfg.Console = serve
		}
		d := &door{cfg: cfg}
		if got := d.toConsole(tc.db); got != tc.want {
			t.Errorf("toConsole(%q) with console=%v = %v, want %v", tc.db, tc.console, got, tc.want)
		}
	}
}

func TestAStartupWithoutAUserIsRefusedAfterSSLIsDeclined(t *testing.T) {
	client, server := net.Pipe()
	cfg := &Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Relay: &session.Env{}}
	cfg.Relay.SetLive(session.Live{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(context.Background(), cfg, server, nil, Gate{}, nil)
	}()
	fe := pgproto3.NewFrontend(client, client)
	fe.Send(&pgproto3.SSLRequest{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(client, answer[:]); err != nil || answer[0] != 'N' {
		t.Fatalf("SSLRequest answered %q, %v; want N", answer[0], err)
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"database": "x"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || e.Code != "28000" || e.Message != "no PostgreSQL user name specified in startup packet" {
		t.Fatalf("got %#v, want FATAL 28000", msg)
	}
	client.Close()
	<-done
}
