// Package observe is what pgvalve knows about itself, in one shape for
// every reader: the admin console, the Prometheus exporter and the live
// page all show the same views. Counters on the hot path are atomic or
// per session and summed when read; nothing here takes a lock per message.
package observe

import "time"

// Kind is a latency pgvalve measures.
type Kind uint8

const (
	Wait  Kind = iota // a client waiting for a server (acquire)
	Query             // one request, from its first byte to its ReadyForQuery
	Xact              // one transaction, from BEGIN (or an implicit one) to its end
	NumKinds
)

// Pool is one pool (one database and user) as it is now.
type Pool struct {
	Database, User string
	Mode           string // session, transaction, statement
	Size           int    // pool_size in force
	ReserveSize    int
	Paused         bool // PAUSE: holds new transactions
	Draining       bool // retired by a reload: serves the clients it has

	// Clients: logged in and holding a server or idle (cl_active), queued
	// for a server (cl_waiting), still logging in.
	ClientsActive, ClientsWaiting, ClientsLogin int
	// Servers: leased to a client (sv_active), parked (sv_idle), parked
	// but to be checked before reuse (sv_used), dialing (sv_login),
	// being closed.
	ServersActive, ServersIdle, ServersUsed, ServersLogin, ServersClosing int
	// Listeners: the shared listening connection for LISTEN in
	// transaction pooling (0 or 1), outside the pool's size.
	Listeners int
	// Pinned: clients kept on their servers by session state
	// (transaction pooling), bounded by max_pinned_servers.
	Pinned  int64
	MaxWait time.Duration // the oldest waiting client's wait so far

	// Totals since start.
	Acquires, Waits, WaitTimeouts, DialErrors int64
	Xacts, Queries                            int64
	BytesReceived, BytesSent                  int64 // from clients, to clients
	WaitTime, QueryTime, XactTime             time.Duration
	// ServersClosed counts server connections ended, by reason name
	// (lost ones included; see package reason).
	ServersClosed map[string]int64
	LastDialError string // "" when the last dial succeeded

	// Latency is the pool's histograms, live: readers must only read them.
	// It may be nil.
	Latency *[NumKinds]Hist

	// LatencyNow summarises each Kind over the last minute and
	// LatencyTotal since start; the app fills both from Latency when it
	// builds the view, so readers never touch the histograms. A Wait
	// summary's Count is the number of servers handed to clients.
	LatencyNow, LatencyTotal [NumKinds]Summary
	// ReceivedLastMinute and SentLastMinute are the bytes from and to
	// clients over the last minute (BytesReceived and BytesSent's growth).
	ReceivedLastMinute, SentLastMinute int64
}

// Client is one client connection as it is now.
type Client struct {
	ID              uint64
	Addr            string // remote address, host:port
	User, Database  string
	ApplicationName string
	ConnectedAt     time.Time
	State           string    // "login", "active", "waiting", "idle"
	RequestAt       time.Time // its last request
	WaitingSince    time.Time // zero unless waiting for a server

	// The server it holds, if any (ServerPID 0: none).
	ServerPID int32
	HeldSince time.Time
	// HoldState says what it does with the server it holds: "running
	// query", "idle in transaction", "copy" or "prepared-statement sync".
	HoldState string
	// Pinned names the session state keeping it on its server across
	// transactions in transaction pooling (advisory_lock, temp_table,
	// hold_cursor, listen, load; comma-separated), "" when none.
	Pinned string
	Query  string // the current or last query's first 100 characters ("" when log_query_text is off)
	// ServerShare is its share of its pool's server time over the last
	// minute, 0..1.
	ServerShare float64
}

// Server is one server connection as it is now.
type Server struct {
	PID            int32
	Database, User string
	State          string // "active", "idle", "used", "login"
	ConnectedAt    time.Time
	RequestAt      time.Time
	ClientID       uint64 // the client holding it; 0 when none
	Addr           string // the PostgreSQL host:port
	TLS            string // as PgBouncer shows it: "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"; "" without TLS
}

// Source is what readers of pgvalve's state ask it for: the app
// implements it over its pools and its registry of sessions.
type Source interface {
	Pools() []Pool     // sorted by database, user
	Clients() []Client // sorted by ID
	Servers() []Server // sorted by PID
	// ClientErrors counts errors pgvalve itself sent to clients, by
	// SQLSTATE.
	ClientErrors() map[string]int64
	// Diagnosis is one line per pool in trouble, in plain words.
	Diagnosis() []string
	// Parking says how many idle clients are parked (client_park_delay).
	Parking() Parking
	// Hosts are the hosts of every pool: by pool, then in each pool's
	// order.
	Hosts() []Host
}

// Host is one host of one pool, as SHOW HOSTS lists it.
type Host struct {
	Database, User string
	Host           string // host:port
	// State: "up"; "unreachable", its last login failed; "down", out of
	// the pool's choice (its health check failed, or its role does not
	// fit the route); "lagging", out of the choice for a replay lag over
	// max_replica_lag.
	State string
	Role  string // "primary", "read-only primary", "standby"; "" when not checked
	// Lag is a standby's replay lag at its last check, when LagKnown.
	Lag      time.Duration
	LagKnown bool
	// Weight is its share of the leases (1 unless set).
	Weight int
	// Outstanding is how many leases are held on it: the count the
	// choice of host reads.
	Outstanding, Idle, Connecting int
	Chosen                        int64 // leases granted on it
	LastError                     string
}

// Parking is how idle clients wait: parked, with no goroutine or read
// buffer of their own.
type Parking struct {
	Parked int    // parked now
	Parks  uint64 // times a client parked since pgvalve started
}
