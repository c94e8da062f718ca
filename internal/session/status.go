package session

import (
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/wire"
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
	// pin names the session state keeping a transaction-pooled client on
	// its server (advisory_lock, temp_table, ...); nil or "" when none.
	pin atomic.Pointer[string]

	// query is the head of the last query the client sent (Query or
	// Parse); nil before one, or when it did not fit the read buffer.
	query atomic.Pointer[string]
	// served is the server time the client held over the last minute
	// (ns), added as each hold ends; meter, set before the relay starts,
	// is its pool's, which counts the same time for the whole pool (an
	// atomic: the live page reads it while a client logs in).
	served atomic.Pointer[observe.Window] // made by the first hold
	meter  atomic.Pointer[observe.Meter]
	// owner is the session relaying for the client, once it runs: the app
	// reaches it through here to drain it, wake it or ask it to park,
	// instead of a context watch per client.
	owner atomic.Pointer[Session]
}

// setOwner records the session relaying for the client.
func (st *Status) setOwner(s *Session) {
	if st != nil {
		st.owner.Store(s)
	}
}

// Wake ends the relay's wait for its client, parked or not, so that it
// looks at what changed (its context ended: a kill, a hard stop).
func (st *Status) Wake() {
	if st == nil {
		return
	}
	if s := st.owner.Load(); s != nil {
		s.wakeClient()
	}
}

// Drain asks the client's session to end at its next safe point (a
// graceful shutdown).
func (st *Status) Drain() {
	if st == nil {
		return
	}
	if s := st.owner.Load(); s != nil {
		s.drain()
	}
}

// AskPark asks the client, if it has been idle (holding no server) since
// before cutoff, to park: to wait with no goroutine or buffer of its own.
// The app's park.Lot calls it for every client now and then.
func (st *Status) AskPark(cutoff time.Time) {
	if State(st.link.Load()>>32) != Idle || st.since.Load() > cutoff.UnixNano() {
		return
	}
	if s := st.owner.Load(); s != nil {
		s.askPark()
	}
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

func (st *Status) setPin(causes string) {
	if st != nil {
		st.pin.Store(&causes)
	}
}

// Pin names what keeps the client on its server across transactions
// (comma-separated causes), "" when nothing does.
func (st *Status) Pin() string {
	if st == nil {
		return ""
	}
	if p := st.pin.Load(); p != nil {
		return *p
	}
	return ""
}

// Hold returns what the client last did with its server.
func (st *Status) Hold() Hold { return Hold(st.hold.Load()) }

// Login is who a client logged in as.
type Login struct {
	User, Database, ApplicationName string
}

// LoginOf is the Login of a client of user and database with startup
// parameters params (application_name among them, if given).
func LoginOf(user, database string, params []wire.Param) Login {
	l := Login{User: user, Database: database}
	for _, p := range params {
		if p.Name == "application_name" {
			l.ApplicationName = p.Value
			break
		}
	}
	return l
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
	if st == nil {
		return Login{}
	}
	if l := st.login.Load(); l != nil {
		return *l
	}
	return Login{}
}

// set records the client's state and its server's PID (0: none) since now.
// Leaving Active counts the hold in the client's and its pool's server
// time.
func (st *Status) set(s State, pid uint32, now time.Time) {
	if st == nil {
		return
	}
	old := st.link.Swap(uint64(s)<<32 | uint64(pid))
	since := st.since.Swap(now.UnixNano())
	if State(old>>32) == Active && s != Active {
		held := min(now.Sub(time.Unix(0, since)), observe.MaxHold)
		w := st.served.Load()
		if w == nil {
			st.served.CompareAndSwap(nil, new(observe.Window))
			w = st.served.Load()
		}
		w.AddAt(int64(held), now)
		if m := st.meter.Load(); m != nil {
			m.Served.AddAt(int64(held), now)
		}
	}
}

// Served is the server time the client held over the last minute as seen
// at now, in holds that ended (the one it is in, if any, is not counted).
func (st *Status) Served(now time.Time) time.Duration {
	if w := st.served.Load(); w != nil {
		return time.Duration(w.LastMinute(now))
	}
	return 0
}

// Meter is the pool meter the client's holds count in (nil before it
// reaches the relay).
func (st *Status) Meter() *observe.Meter { return st.meter.Load() }

// QueryHeadLen is how much of a query the list of live sessions keeps.
const QueryHeadLen = 100

// noteQuery keeps the head of a query the client sent; text is the query
// (it may run on past the head, and need not end in a whole character).
// A query like the last one allocates nothing.
func (st *Status) noteQuery(text []byte) {
	if len(text) > QueryHeadLen {
		text = text[:QueryHeadLen]
		// Never cut a character in two: drop a last rune left incomplete
		// (a few bytes at most, whatever the encoding).
		for range utf8.UTFMax - 1 {
			if r, n := utf8.DecodeLastRune(text); r != utf8.RuneError || n != 1 {
				break
			}
			text = text[:len(text)-1]
		}
	}
	if p := st.query.Load(); p != nil && *p == string(text) {
		return
	}
	q := string(text)
	st.query.Store(&q)
}

// forgetQuery drops the last query's head (the next one did not fit in
// the read buffer, so its head is unknown).
func (st *Status) forgetQuery() { st.query.Store(nil) }

// Query returns the head of the last query the client sent ("" if none).
func (st *Status) Query() string {
	if st == nil {
		return ""
	}
	if p := st.query.Load(); p != nil {
		return *p
	}
	return ""
}

// Link returns the client's state, its server's PID (0 when it holds
// none) and when it entered that state.
func (st *Status) Link() (s State, pid uint32, since time.Time) {
	v := st.link.Load()
	return State(v >> 32), uint32(v), time.Unix(0, st.since.Load())
}
