package web

import (
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// fakeSource is an observe.Source whose views the test sets: pgvalve's
// own state, made up.
type fakeSource struct {
	mu        sync.Mutex
	pools     []observe.Pool
	clients   []observe.Client
	servers   []observe.Server
	errors    map[string]int64
	diagnosis []string
	reads     int // Pools calls
}

func (f *fakeSource) Pools() []observe.Pool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return append([]observe.Pool(nil), f.pools...)
}

func (f *fakeSource) Clients() []observe.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]observe.Client(nil), f.clients...)
}

func (f *fakeSource) Servers() []observe.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]observe.Server(nil), f.servers...)
}

func (f *fakeSource) ClientErrors() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errors
}

func (f *fakeSource) Parking() observe.Parking { return observe.Parking{} }
func (f *fakeSource) Hosts() []observe.Host    { return nil }

func (f *fakeSource) Diagnosis() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.diagnosis...)
}

func (f *fakeSource) set(change func(f *fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeSource) poolReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// saturated is one pool with both its servers held by workers idle in
// transaction and a third client waiting, as of now.
func saturated(now time.Time) *fakeSource {
	ms := time.Millisecond
	return &fakeSource{
		pools: []observe.Pool{{
			Database: "shop", User: "app", Mode: "transaction", Size: 2, ReserveSize: 0,
			ClientsActive: 2, ClientsWaiting: 1,
			ServersActive: 2,
			MaxWait:       1500 * ms,
			Acquires:      120, Waits: 7, WaitTimeouts: 1, Xacts: 110, Queries: 340,
			BytesReceived: 1 << 20, BytesSent: 3 << 20,
			WaitTime: 2500 * ms, QueryTime: 4 * time.Second, XactTime: 9 * time.Second,
			ServersClosed: map[string]int64{"lifetime": 2},
			LatencyNow: [observe.NumKinds]observe.Summary{
				observe.Wait:  {Count: 7, Sum: 2500 * ms, P50: 200 * ms, P95: 1200 * ms, P99: 1500 * ms, Max: 1500 * ms},
				observe.Query: {Count: 300, Sum: 3 * time.Second, P50: 2 * ms, P95: 25 * ms, P99: 80 * ms, Max: 120 * ms},
			},
		}},
		clients: []observe.Client{
			{ID: 1, Addr: "10.0.0.7:51000", User: "app", Database: "shop", ApplicationName: "worker",
				ConnectedAt: now.Add(-10 * time.Minute), State: "active", RequestAt: now.Add(-40 * time.Second),
				ServerPID: 4101, HeldSince: now.Add(-42 * time.Second), HoldState: "idle in transaction",
				Query: "UPDATE jobs SET state = 'running' WHERE id = $1", ServerShare: 0.55},
			{ID: 2, Addr: "10.0.0.8:51002", User: "app", Database: "shop", ApplicationName: "worker",
				ConnectedAt: now.Add(-9 * time.Minute), State: "active", RequestAt: now.Add(-30 * time.Second),
				ServerPID: 4102, HeldSince: now.Add(-31 * time.Second), HoldState: "idle in transaction",
				Query: "SELECT * FROM jobs WHERE state = 'queued' FOR UPDATE SKIP LOCKED", ServerShare: 0.43},
			{ID: 3, Addr: "10.0.0.9:40000", User: "app", Database: "shop", ApplicationName: "web",
				ConnectedAt: now.Add(-2 * time.Second), State: "waiting", RequestAt: now.Add(-1500 * ms),
				WaitingSince: now.Add(-1500 * ms)},
		},
		servers: []observe.Server{
			{PID: 4101, Database: "shop", User: "app", State: "active", ConnectedAt: now.Add(-20 * time.Minute),
				RequestAt: now.Add(-40 * time.Second), ClientID: 1, Addr: "127.0.0.1:5432"},
			{PID: 4102, Database: "shop", User: "app", State: "active", ConnectedAt: now.Add(-20 * time.Minute),
				RequestAt: now.Add(-30 * time.Second), ClientID: 2, Addr: "127.0.0.1:5432"},
		},
		errors: map[string]int64{"53300": 1},
		diagnosis: []string{
			"shop/app: all 2 servers held, 1 client waiting 1.5s; 2 holders idle in transaction (worker)",
		},
	}
}
