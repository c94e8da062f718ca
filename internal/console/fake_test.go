package console_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/console"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// fakeBackend is pgvalve's state as a test sets it, and a record of the
// admin commands the console asked for.
type fakeBackend struct {
	mu      sync.Mutex
	pools   []observe.Pool
	clients []observe.Client
	servers []observe.Server
	calls   []string
	err     error // returned by every admin command when set
	now     time.Time
}

func (f *fakeBackend) Pools() []observe.Pool     { f.mu.Lock(); defer f.mu.Unlock(); return f.pools }
func (f *fakeBackend) Clients() []observe.Client { f.mu.Lock(); defer f.mu.Unlock(); return f.clients }
func (f *fakeBackend) Servers() []observe.Server { f.mu.Lock(); defer f.mu.Unlock(); return f.servers }
func (f *fakeBackend) ClientErrors() map[string]int64 {
	return map[string]int64{"53300": 1}
}
func (f *fakeBackend) Parking() observe.Parking { return observe.Parking{} }
func (f *fakeBackend) Diagnosis() []string {
	return observe.Diagnose(f.Pools(), f.Clients(), f.now)
}
func (f *fakeBackend) Databases() []console.Database {
	return []console.Database{{Name: "app", Host: "10.0.0.5", Port: 5432, DBName: "app", PoolSize: 2, ServerLifetime: time.Hour,
		PoolMode: "transaction", CurrentConnections: 2, CurrentClientConnections: 3}}
}
func (f *fakeBackend) Peers() []console.Peer {
	return []console.Peer{{ID: 1, Host: "10.0.0.8", Port: 6432, Self: true}, {ID: 2, Host: "10.0.0.9", Port: 6432}}
}
func (f *fakeBackend) Hosts() []observe.Host {
	return []observe.Host{
		{Database: "app", User: "app", Host: "10.0.0.5:5432", State: "up", Role: "primary", Weight: 1, Outstanding: 2, Chosen: 9},
		{Database: "app", User: "app", Host: "10.0.0.6:5432", State: "down", Role: "standby", Weight: 1, LastError: "connection refused"},
		{Database: "app", User: "app", Host: "10.0.0.7:5432", State: "lagging", Role: "standby", Lag: 2500 * time.Millisecond, LagKnown: true,
			Weight: 2, Outstanding: 1, Chosen: 4, LastError: "replay lags 2.5s behind the primary, more than max_replica_lag (1s)"},
	}
}
func (f *fakeBackend) Users() []console.User {
	return []console.User{{Name: "app", PoolSize: -1, ReservePoolSize: 3}}
}
func (f *fakeBackend) Config() []console.Setting {
	return []console.Setting{
		{Key: "max_client_conn", Value: "100", Default: "100", Changeable: true},
		{Key: "max_user_connections", Value: "0", Default: "0", Changeable: true},
	}
}
func (f *fakeBackend) State() console.State { return console.State{} }
func (f *fakeBackend) Version() string      { return "0.9.1" }

func (f *fakeBackend) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}
func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
func (f *fakeBackend) Pause(ctx context.Context, db string) error { return f.record("pause " + db) }
func (f *fakeBackend) Resume(db string) error                     { return f.record("resume " + db) }
func (f *fakeBackend) Reconnect(db string) error                  { return f.record("reconnect " + db) }
func (f *fakeBackend) Kill(db string) error                       { return f.record("kill " + db) }
func (f *fakeBackend) KillClient(id uint64) error                 { return f.record(fmt.Sprint("kill_client ", id)) }
func (f *fakeBackend) WaitClose(ctx context.Context, db string) error {
	return f.record("wait_close " + db)
}
func (f *fakeBackend) Reload() error { return f.record("reload") }
func (f *fakeBackend) Shutdown(mode console.ShutdownMode) error {
	return f.record(fmt.Sprint("shutdown ", mode))
}

// saturated is a pool of 2 servers, both held by workers idle in a
// transaction, and one client waiting.
func saturated(now time.Time) *fakeBackend {
	return &fakeBackend{
		now: now,
		pools: []observe.Pool{{
			Database: "app", User: "app", Mode: "transaction", Size: 2,
			ClientsActive: 2, ClientsWaiting: 1, ServersActive: 2, MaxWait: 1500 * time.Millisecond,
			Acquires: 120, Xacts: 100, Queries: 300, BytesReceived: 6000, BytesSent: 12000,
			WaitTime: 2 * time.Second, QueryTime: 3 * time.Second, XactTime: 4 * time.Second,
			LatencyNow: [observe.NumKinds]observe.Summary{
				observe.Wait:  {Count: 120, Sum: 1200 * time.Millisecond, P50: time.Millisecond, P95: 5 * time.Millisecond, P99: 9 * time.Millisecond, Max: 1500 * time.Millisecond},
				observe.Query: {Count: 300, Sum: 3 * time.Second, P50: 2500 * time.Microsecond, P95: 20 * time.Millisecond, P99: 40 * time.Millisecond, Max: 100 * time.Millisecond},
				observe.Xact:  {Count: 60, Sum: 6 * time.Second},
			},
			LatencyTotal: [observe.NumKinds]observe.Summary{
				observe.Query: {Count: 300, Sum: 3 * time.Second, P50: 1234567 * time.Nanosecond},
			},
			ReceivedLastMinute: 6000, SentLastMinute: 12000,
		}},
		clients: []observe.Client{
			{ID: 1, Addr: "10.0.0.7:40001", User: "app", Database: "app", ApplicationName: "worker", ConnectedAt: now.Add(-time.Minute),
				State: "active", RequestAt: now.Add(-30 * time.Second), ServerPID: 101, HeldSince: now.Add(-30 * time.Second),
				HoldState: "idle in transaction", Query: "UPDATE jobs SET state = 'taken' WHERE id = 1", ServerShare: 0.5},
			{ID: 2, Addr: "10.0.0.7:40002", User: "app", Database: "app", ApplicationName: "worker", ConnectedAt: now.Add(-time.Minute),
				State: "active", RequestAt: now.Add(-20 * time.Second), ServerPID: 102, HeldSince: now.Add(-20 * time.Second),
				HoldState: "idle in transaction", ServerShare: 0.375},
			{ID: 3, Addr: "10.0.0.9:50000", User: "app", Database: "app", ApplicationName: "web", ConnectedAt: now.Add(-time.Second),
				State: "waiting", RequestAt: now.Add(-1500 * time.Millisecond), WaitingSince: now.Add(-1500 * time.Millisecond)},
		},
		servers: []observe.Server{
			{PID: 101, Database: "app", User: "app", State: "active", ConnectedAt: now.Add(-time.Hour), ClientID: 1, Addr: "10.0.0.5:5432"},
			{PID: 102, Database: "app", User: "app", State: "active", ConnectedAt: now.Add(-time.Hour), ClientID: 2, Addr: "10.0.0.5:5432"},
		},
	}
}

// consoleServer is a minimal front door: it reads the startup packet
// (refusing SSL), authorizes the user (admin: admin, stats: stats),
// answers AuthenticationOk and hands the connection to console.Serve.
type consoleServer struct {
	addr    string
	backend console.Backend
	maxMsg  int

	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error // what Serve returned, per connection
}

func startConsole(t *testing.T, b console.Backend) *consoleServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &consoleServer{addr: ln.Addr().String(), backend: b, maxMsg: 1 << 20, ln: ln, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				err := s.serve(ctx, conn)
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *consoleServer) stop() {
	s.cancel()
	s.ln.Close()
	s.wg.Wait()
}

func (s *consoleServer) port() string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

func (s *consoleServer) serve(ctx context.Context, conn net.Conn) error {
	var st *wire.Startup
	for {
		var err error
		if st, err = wire.ReadStartup(conn); err != nil {
			return err
		}
		if st.Kind != wire.KindSSLRequest && st.Kind != wire.KindGSSENCRequest {
			break
		}
		if _, err := conn.Write([]byte{'N'}); err != nil {
			return err
		}
	}
	if st.Kind != wire.KindStartup {
		return errors.New("not a startup")
	}
	user, _ := st.Get("user")
	db, _ := st.Get("database")
	if !console.IsConsole(db) {
		conn.Write(wire.AppendError(nil, wire.SeverityFatal, wire.CodeInvalidCatalogName, "not the console"))
		return errors.New("not the console")
	}
	role, err := console.Authorize(user, []string{"admin"}, []string{"stats"})
	if err != nil {
		conn.Write(wire.AppendError(nil, wire.SeverityFatal, wire.CodeInvalidAuthSpec, err.Error()))
		return err
	}
	if _, err := conn.Write(wire.Append(nil, &pgproto3.AuthenticationOk{})); err != nil {
		return err
	}
	rd := wire.NewReader(conn, wire.DefaultBufferSize, s.maxMsg)
	return console.Serve(ctx, conn, rd, console.Login{User: user, Role: role}, s.backend)
}

// observe2 is an idle pool of database db.
func observe2(db string) observe.Pool {
	return observe.Pool{Database: db, User: "x", Mode: "session", Size: 5}
}
