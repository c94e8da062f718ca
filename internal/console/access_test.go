package console_test

// The front of the console: who may log in, and what it does with
// messages that are not simple queries.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/console"
)

func TestAuthorize(t *testing.T) {
	admins, stats := []string{"root", "ops"}, []string{"monitor", "ops"}
	for _, c := range []struct {
		user string
		role console.Role
		ok   bool
	}{
		{"root", console.RoleAdmin, true},
		{"ops", console.RoleAdmin, true}, // in both: admin wins
		{"monitor", console.RoleStats, true},
		{"app", 0, false},
		{"", 0, false},
		{"ROOT", 0, false}, // user names are case sensitive
	} {
		role, err := console.Authorize(c.user, admins, stats)
		if role != c.role || (err == nil) != c.ok {
			t.Errorf("Authorize(%q) = %v, %v", c.user, role, err)
		}
		if err != nil && (!errors.Is(err, console.ErrNotAllowed) || !strings.Contains(err.Error(), "admin_users or stats_users")) {
			t.Errorf("Authorize(%q) error %q", c.user, err)
		}
	}
}

func TestUnauthorizedUserGetsFatal28000(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	_, err := pgx.Connect(context.Background(), "postgres://app@"+s.addr+"/pgbouncer?sslmode=disable")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28000" || !strings.Contains(pgErr.Message, `user "app" is not allowed to use the pgvalve console`) {
		t.Errorf("got %v", err)
	}
}

// rawConn logs in with the wire protocol by hand.
func rawConn(t *testing.T, s *consoleServer) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "admin", "database": "pgvalve"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return conn, fe
		}
	}
}

// receiveAll reads messages up to ReadyForQuery or an error.
func receiveAll(t *testing.T, fe *pgproto3.Frontend) ([]pgproto3.BackendMessage, error) {
	t.Helper()
	var msgs []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			return msgs, err
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			c := *m
			msgs = append(msgs, &c)
		default:
			msgs = append(msgs, m)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return msgs, nil
		}
	}
}

// PgBouncer answers the extended protocol with an error and closes the
// connection; pgvalve does the same.
func TestExtendedProtocolIsRefused(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn, fe := rawConn(t, s)
	fe.Send(&pgproto3.Parse{Query: "SHOW POOLS"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msgs, err := receiveAll(t, fe)
	if len(msgs) == 0 {
		t.Fatalf("no answer: %v", err)
	}
	e, ok := msgs[0].(*pgproto3.ErrorResponse)
	if !ok || e.Code != "08P01" || e.Message != "extended query protocol not supported by admin console" {
		t.Errorf("answer %#v", msgs[0])
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("connection not closed cleanly: %v", err)
	}
}

func TestHugeMessageIsRefusedWithoutReadingIt(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	conn, fe := rawConn(t, s)
	var hdr [5]byte
	hdr[0] = 'Q'
	binary.BigEndian.PutUint32(hdr[1:], 1<<30) // 1 GiB declared, never sent
	if _, err := conn.Write(append(hdr[:], "SHOW POOLS"...)); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*pgproto3.ErrorResponse); !ok || e.Code != "08P01" || e.Severity != "FATAL" {
		t.Errorf("answer %#v", m)
	}
	if _, err := fe.Receive(); err == nil {
		t.Error("connection still open")
	}
	// The console survives for the next client.
	c := connect(t, s, "admin")
	if r := run(t, c, "SHOW VERSION"); r.err != nil {
		t.Error(r.err)
	}
}

func TestQueryLongerThanTheBufferIsRefused(t *testing.T) {
	s := startConsole(t, saturated(time.Now())) // 16 KiB buffer, 1 MiB limit
	_, fe := rawConn(t, s)
	fe.Send(&pgproto3.Query{String: "SHOW " + strings.Repeat("x", 100<<10)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*pgproto3.ErrorResponse); !ok || e.Code != "08P01" {
		t.Errorf("answer %#v", m)
	}
}

func TestShutdownEndsTheSessionWith57P01(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	_, fe := rawConn(t, s)
	s.cancel()
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*pgproto3.ErrorResponse); !ok || e.Code != "57P01" {
		t.Errorf("answer %#v", m)
	}
}

func TestUnsupportedMessage(t *testing.T) {
	s := startConsole(t, saturated(time.Now()))
	_, fe := rawConn(t, s)
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.(*pgproto3.ErrorResponse); !ok || e.Message != "unsupported packet type for admin console: 72" {
		t.Errorf("answer %#v", m)
	}
}

func TestPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql")
	}
	s := startConsole(t, saturated(time.Now()))
	for cmd, want := range map[string][]string{"SHOW POOLS": golden["POOLS"], "show holders;": golden["HOLDERS"], "SHOW STATS": golden["STATS"]} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, psql, "-X", "-A", "-F", "|", "-h", "127.0.0.1", "-p", s.port(), "-U", "admin",
			"-c", cmd, "pgbouncer").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("psql %s: %v\n%s", cmd, err, out)
		}
		lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
		if got := strings.Split(lines[0], "|"); !slices.Equal(got, want) {
			t.Errorf("psql %s header:\n got %q\nwant %q", cmd, got, want)
		}
		if cmd == "SHOW POOLS" && (len(lines) != 3 || !strings.HasPrefix(lines[1], "app|app|2|1|0|0|2|")) {
			t.Errorf("psql SHOW POOLS:\n%s", out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, psql, "-X", "-h", "127.0.0.1", "-p", s.port(), "-U", "admin", "-c", "SHOW HELP", "pgbouncer").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Console usage") || !strings.Contains(string(out), "KILL_CLIENT") {
		t.Errorf("psql SHOW HELP: %v\n%s", err, out)
	}
}
