package session

import (
	"sync/atomic"
	"time"
)

// State is where a client stands, as the list of live sessions shows it.
type State uint8

const (
	// LoggingIn: at the front door, not yet handed to the relay.
	LoggingIn State = iota
	// Idle: logged in, holding no server.
	Idle
	// Waiting: queued for a server.
	Waiting
	// Active: holding a server (ServerPID says which).
	Active
)

var stateNames = [...]string{"logging_in", "idle", "waiting", "active"}

func (s State) String() string { return stateNames[s] }

// Status is one client's entry in the list of live sessions (app's
// registry, read by the admin console and metrics). ID, Remote and
// Connected are fixed before it is listed; the login facts are set once;
// the live state is kept in atomics the relay sets as it takes and gives
// back servers, so the hot path takes no lock and readers see each field
// whole. Methods are safe on a nil *Status (a client nobody lists).
type Status struct {
	ID        uint64
	Remote    string
	Connected time.Time

	login atomic.Pointer[Login]
	// link packs the state (bits 32-39) and the server's PID (bits 0-31),
	// so the two are read together; since is when the state was entered,
	// in Unix nanoseconds.
	link  atomic.Uint64
	since atomic.Int64
	hold  atomic.Uint32 // a Hold, set as requests go and answers come
}

// Hold is what a client holding a server does with it.
type Hold uint8

const (
	HoldIdle         Hold = iota // between statements (session pooling)
	HoldRunning                  // a request is on the server
	HoldIdleInTx                 // inside a transaction, sending nothing
	HoldCopy                     // in COPY FROM STDIN
	HoldPreparedSync             // extended-protocol messages sent, their Sync not yet
)

var holdNames = [...]string{"idle", "running query", "idle in transaction", "copy", "prepared-statement sync"}

func (h Hold) String() string { return holdNames[h] }

func (st *Status) setHold(h Hold) {
	if st != nil {
		st.hold.Store(uint32(h))
	}
}

// Hold returns what the client last did with its server.
func (st *Status) Hold() Hold { return Hold(st.hold.Load()) }

// Login is who a client logged in as.
type Login struct {
	User, Database, ApplicationName string
}

// NewStatus returns the entry of a client accepted at now.
func NewStatus(id uint64, remote string, now time.Time) *Status {
	st := &Status{ID: id, Remote: remote, Connected: now}
	st.since.Store(now.UnixNano())
	return st
}

// SetLogin records who the client is, once its startup packet is read.
func (st *Status) SetLogin(l Login) {
	if st != nil {
		st.login.Store(&l)
	}
}

// Login returns who the client is; zero while its startup is unread.
func (st *Status) Login() Login {
	if l := st.login.Load(); l != nil {
		return *l
	}
	return Login{}
}

// set records the client's state and its server's PID (0: none) since now.
func (st *Status) set(s State, pid uint32, now time.Time) {
	if st == nil {
		return
	}
	st.link.Store(uint64(s)<<32 | uint64(pid))
	st.since.Store(now.UnixNano())
}

// Link returns the client's state, its server's PID (0 when it holds
// none) and when it entered that state.
func (st *Status) Link() (s State, pid uint32, since time.Time) {
	v := st.link.Load()
	return State(v >> 32), uint32(v), time.Unix(0, st.since.Load())
}
