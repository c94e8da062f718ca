package console

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/observe"
)

func TestParseCommand(t *testing.T) {
	for _, c := range []struct {
		q    string
		want command
		err  error
	}{
		{"SHOW POOLS", command{Verb: "show", Arg: "POOLS"}, nil},
		{"  show\tpools ; \n", command{Verb: "show", Arg: "pools"}, nil},
		{"show pools;", command{Verb: "show", Arg: "pools"}, nil},
		{"RELOAD", command{Verb: "reload"}, nil},
		{"reload;", command{Verb: "reload"}, nil},
		{`PAUSE "my ""odd"" db"`, command{Verb: "pause", Arg: `my "odd" db`}, nil},
		{"PAUSE MyDb", command{Verb: "pause", Arg: "MyDb"}, nil},
		{"", command{}, nil},
		{" ; ", command{}, nil},
		{"set datestyle = 'ISO'", command{Verb: "set", Arg: "datestyle", Value: "ISO"}, nil},
		{"SET x TO y;", command{Verb: "set", Arg: "x", Value: "y"}, nil},
		{"SET x = 'it''s'", command{Verb: "set", Arg: "x", Value: "it's"}, nil},
		{"set pools", command{Verb: "set", Arg: "pools"}, nil},
		{"SHOW POOLS; SHOW STATS", command{}, errSyntax},
		{"SHOW POOLS;;", command{}, errSyntax},
		{"pause a b", command{}, errSyntax},
		{`pause ""`, command{}, errSyntax},
		{`pause "unterminated`, command{}, errSyntax},
		{"select 1+1", command{}, errSyntax},
		{"KILL-CLIENT 1", command{}, errSyntax},
		{"abcdefghijklmnop", command{}, errBadArgs}, // 16 bytes
		{"pause " + strings.Repeat("d", 64), command{}, errBadArgs},
	} {
		got, err := parseCommand(c.q)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", c.q, got, err, c.want, c.err)
		}
	}
}

// stubBackend answers every question with a little state and every
// command with success.
type stubBackend struct{}

func (stubBackend) Pools() []observe.Pool {
	return []observe.Pool{{Database: "d", User: "u", Size: 1, ServersActive: 1, ClientsWaiting: 1}}
}
func (stubBackend) Clients() []observe.Client {
	return []observe.Client{{ID: 1, Addr: "h:1", User: "u", Database: "d", ServerPID: 7, HoldState: "copy", Query: strings.Repeat("é", 200)}}
}
func (stubBackend) Servers() []observe.Server               { return []observe.Server{{PID: 7, State: "login"}} }
func (stubBackend) ClientErrors() map[string]int64          { return nil }
func (stubBackend) Diagnosis() []string                     { return []string{"pool d/u: trouble"} }
func (stubBackend) Parking() observe.Parking                { return observe.Parking{} }
func (stubBackend) Databases() []Database                   { return []Database{{Name: "d"}} }
func (stubBackend) Hosts() []observe.Host                   { return nil }
func (stubBackend) Peers() []Peer                           { return nil }
func (stubBackend) Users() []User                           { return []User{{Name: "u", PoolSize: -1}} }
func (stubBackend) Config() []Setting                       { return []Setting{{Key: "k"}} }
func (stubBackend) State() State                            { return State{Paused: true} }
func (stubBackend) Version() string                         { return "1.0.0" }
func (stubBackend) Pause(context.Context, string) error     { return nil }
func (stubBackend) Resume(string) error                     { return nil }
func (stubBackend) Reconnect(string) error                  { return nil }
func (stubBackend) Kill(string) error                       { return nil }
func (stubBackend) KillClient(uint64) error                 { return nil }
func (stubBackend) WaitClose(context.Context, string) error { return nil }
func (stubBackend) Reload() error                           { return nil }
func (stubBackend) Shutdown(ShutdownMode) error             { return nil }

// FuzzCommand feeds untrusted queries to the parser and the dispatcher:
// neither may panic, a parsed command keeps the parser's promises, and
// every answer is well-formed messages ending in one ReadyForQuery (but
// SHUTDOWN's, which is none).
func FuzzCommand(f *testing.F) {
	for _, q := range []string{"SHOW POOLS", "show holders;", "SHOW DIAGNOSIS", "SHOW LATENCY", "SHOW CLIENTS", "SHOW SERVERS",
		"PAUSE db", `KILL "x""y"`, "KILL_CLIENT 18446744073709551615", "SET a = 'b'", "SET x TO y", "", ";", "SHOW HELP",
		"SHUTDOWN", "shutdown wait_for_servers", "select pools", "\x00", "SHOW \xff"} {
		f.Add(q, true)
	}
	f.Fuzz(func(t *testing.T, q string, admin bool) {
		c, err := parseCommand(q)
		if err == nil {
			if c.Verb != asciiLower(c.Verb) || len(c.Verb) > maxVerb || len(c.Arg) > maxArg || len(c.Value) > maxValue {
				t.Fatalf("parseCommand(%q) = %+v", q, c)
			}
			if c.Verb == "" && (c.Arg != "" || strings.Trim(q, " \t\r\n;") != "") {
				t.Fatalf("parseCommand(%q) = empty", q)
			}
		}
		role := RoleStats
		if admin {
			role = RoleAdmin
		}
		s := &session{login: Login{User: "u", Role: role}, b: stubBackend{}, now: time.Now}
		shutdown := s.query(context.Background(), q)
		fe := pgproto3.NewFrontend(bytes.NewReader(s.out), nil)
		ready := 0
		for {
			m, err := fe.Receive()
			if err != nil {
				break
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				ready++
			} else if ready > 0 {
				t.Fatalf("%q: %T after ReadyForQuery", q, m)
			}
		}
		if want := map[bool]int{true: 0, false: 1}[shutdown]; ready != want {
			t.Fatalf("%q: %d ReadyForQuery, want %d", q, ready, want)
		}
	})
}
