package observe

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestDiagnose(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }
	idleTx := func(id uint64, app, addr string, pid int32) Client {
		return Client{ID: id, User: "app", Database: "app", ApplicationName: app, Addr: addr, State: "active",
			ServerPID: pid, HeldSince: ago(30), HoldState: "idle in transaction"}
	}
	waiter := func(id uint64, since float64) Client {
		return Client{ID: id, User: "app", Database: "app", Addr: "10.0.0.1:5000", State: "waiting", WaitingSince: ago(since)}
	}
	saturated := Pool{Database: "app", User: "app", Size: 20, ServersActive: 20, ClientsActive: 20, ClientsWaiting: 143, MaxWait: 4200 * time.Millisecond}

	var twelveWorkers []Client
	for i := range 12 {
		twelveWorkers = append(twelveWorkers, idleTx(uint64(i+1), "worker", "10.0.0.7:40000", int32(100+i)))
	}

	tests := []struct {
		name    string
		pools   []Pool
		clients []Client
		want    []string
	}{
		{
			name:  "healthy pools say nothing",
			pools: []Pool{{Database: "app", User: "app", Size: 20, ServersActive: 3, ServersIdle: 5}},
			want:  nil,
		},
		{
			name:  "busy but nobody waits",
			pools: []Pool{{Database: "app", User: "app", Size: 2, ServersActive: 2}},
			want:  nil,
		},
		{
			name:    "saturated by idle-in-transaction holders",
			pools:   []Pool{saturated},
			clients: twelveWorkers,
			want: []string{"pool app/app: 20 of 20 servers busy, 143 clients waiting, longest wait 4.2 s; " +
				"12 servers held by clients idle in transaction for up to 30.0 s (application 'worker', 10.0.0.7) — see idle_transaction_timeout"},
		},
		{
			name:  "holders grouped by application and host, most first; the waiting client's own wait counts",
			pools: []Pool{{Database: "app", User: "app", Size: 3, ServersActive: 3, ClientsWaiting: 1}},
			clients: []Client{
				idleTx(1, "worker", "10.0.0.7:1", 11),
				idleTx(2, "cron", "10.0.0.8:1", 12),
				idleTx(3, "worker", "10.0.0.7:2", 13),
				waiter(4, 6.5),
				// another pool's holder is not this pool's
				{ID: 5, User: "other", Database: "app", ServerPID: 14, HoldState: "idle in transaction"},
			},
			want: []string{"pool app/app: 3 of 3 servers busy, 1 client waiting, longest wait 6.5 s; " +
				"3 servers held by clients idle in transaction for up to 30.0 s (application 'worker', 10.0.0.7: 2; application 'cron', 10.0.0.8: 1) — see idle_transaction_timeout"},
		},
		{
			name:  "long queries",
			pools: []Pool{{Database: "app", User: "app", Size: 1, ServersActive: 1, ClientsWaiting: 2, MaxWait: time.Second}},
			clients: []Client{{ID: 1, User: "app", Database: "app", ApplicationName: "report", Addr: "[::1]:5",
				ServerPID: 9, HeldSince: ago(12.34), HoldState: "running query"}},
			want: []string{"pool app/app: 1 of 1 servers busy, 2 clients waiting, longest wait 1.0 s; " +
				"1 server running queries for up to 12.3 s (application 'report', ::1)"},
		},
		{
			name:  "unreachable server with waiting clients",
			pools: []Pool{{Database: "db", User: "u", Size: 5, ClientsWaiting: 3, MaxWait: 2 * time.Second, DialErrors: 7, LastDialError: "dial tcp 10.0.0.5:5432: connect: connection refused"}},
			want:  []string{"pool db/u: cannot reach the server: dial tcp 10.0.0.5:5432: connect: connection refused; 3 clients waiting, longest wait 2.0 s"},
		},
		{
			name:  "unreachable server, nobody waiting yet",
			pools: []Pool{{Database: "db", User: "u", Size: 5, DialErrors: 1, LastDialError: "i/o timeout"}},
			want:  []string{"pool db/u: cannot reach the server: i/o timeout"},
		},
		{
			name:  "a dial error from long ago that no dial repeats is no trouble",
			pools: []Pool{{Database: "db", User: "u", Size: 5, LastDialError: "i/o timeout"}},
			want:  nil,
		},
		{
			name:  "server refuses logins",
			pools: []Pool{{Database: "db", User: "u", Size: 5, DialErrors: 2, LastDialError: `FATAL: password authentication failed for user "u" (SQLSTATE 28P01)`}},
			want:  []string{`pool db/u: the server refuses logins: FATAL: password authentication failed for user "u" (SQLSTATE 28P01)`},
		},
		{
			name:  "paused with waiting clients",
			pools: []Pool{{Database: "db", User: "u", Size: 5, Paused: true, ClientsWaiting: 4, MaxWait: 90 * time.Second}},
			want:  []string{"pool db/u: paused, 4 clients waiting, longest wait 90.0 s — RESUME lets them in"},
		},
		{
			name:  "paused without waiting clients is what PAUSE is for",
			pools: []Pool{{Database: "db", User: "u", Size: 5, Paused: true}},
			want:  nil,
		},
		{
			name: "several pools, one line each in pool order",
			pools: []Pool{
				{Database: "a", User: "u", Size: 1, Paused: true, ClientsWaiting: 1},
				{Database: "b", User: "u", Size: 1, ServersActive: 1},
				{Database: "c", User: "u", Size: 1, DialErrors: 1, LastDialError: "no route to host"},
			},
			want: []string{
				"pool a/u: paused, 1 client waiting, longest wait 0.0 s — RESUME lets them in",
				"pool c/u: cannot reach the server: no route to host",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diagnose(tt.pools, tt.clients, now)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diagnose:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDiagnoseShowsThreeGroupsThenCounts(t *testing.T) {
	var clients []Client
	for i := range 5 {
		clients = append(clients, Client{ID: uint64(i), User: "u", Database: "d", ApplicationName: fmt.Sprint("app", i),
			Addr: "h:1", ServerPID: int32(i + 1), HoldState: "idle in transaction"})
	}
	got := Diagnose([]Pool{{Database: "d", User: "u", Size: 5, ServersActive: 5, ClientsWaiting: 1}}, clients, time.Now())
	want := "pool d/u: 5 of 5 servers busy, 1 client waiting, longest wait 0.0 s; 5 servers held by clients idle in transaction for up to 0.0 s " +
		"(application 'app0', h: 1; application 'app1', h: 1; application 'app2', h: 1; and 2 more) — see idle_transaction_timeout"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestRefusesLogin(t *testing.T) {
	for msg, want := range map[string]bool{
		"dial tcp 1.2.3.4:5432: connect: connection refused": false,
		"i/o timeout": false,
		`FATAL: role "x" does not exist (SQLSTATE 28000)`:                 true,
		"FATAL: sorry, too many clients already (SQLSTATE 53300)":         true,
		`FATAL: no pg_hba.conf entry for host "1.2.3.4"`:                  true,
		"FATAL: the database system is starting up (SQLSTATE 57P03)":      true,
		`FATAL: database "gone" does not exist (SQLSTATE 3D000)`:          true,
		`FATAL: password authentication failed for user "u"`:              true,
		"tls: failed to verify certificate: x509: certificate is invalid": false,
	} {
		if got := refusesLogin(msg); got != want {
			t.Errorf("refusesLogin(%q) = %v, want %v", msg, got, want)
		}
	}
}
