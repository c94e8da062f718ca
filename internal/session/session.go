// Package session runs one logged-in client (internal/frontend logs it
// in): the pool-mode policy and the relay, safe points, timeouts and lost
// servers. It is the only place that holds both a client socket and a
// lease on a server.
package session

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/cleanup"
	"github.com/pgvalve/pgvalve/internal/clientlog"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/park"
	"github.com/pgvalve/pgvalve/internal/pool"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// ServerPool is the pool type sessions lease from.
type ServerPool = pool.Pool[*backend.Conn]

// Route is where a client's database and user lead.
type Route struct {
	Pool *ServerPool
	Mode config.PoolMode
	// Params holds what a fresh server of the pool reports, to greet
	// clients before they hold a server.
	Params *backend.ParamCache
	// Leave, if set, is called once when a client that Lookup let in
	// ends, whether or not it logged in: the route's owner counts its
	// clients from Lookup on, to know when a retired route is unused.
	Leave func()
	// Meter, if set, is where the pool's waits, requests and transactions
	// are measured.
	Meter *observe.Meter
	// Notify, if set, is the pool's shared listening connection, for
	// LISTEN in transaction and statement pooling.
	Notify *notify.Hub
	// State is session_state: what transaction pooling does with the
	// session state its clients leave on servers.
	State config.SessionState
	// Pinned counts the pool's clients pinned to a server by session
	// state, against max_pinned_servers (nil: no bound).
	Pinned *PinCount
}

// Live are the settings a reload may change while sessions run. Each is
// read where it is used, so a change reaches connected clients too, except
// where a field says otherwise.
type Live struct {
	// MaxMessageSize and LoginTimeout (0: none) apply to clients that
	// connect after a change.
	MaxMessageSize int
	LoginTimeout   time.Duration
	ResetQuery     string        // run when a session-mode client leaves; "" skips it
	WaitTimeout    time.Duration // query_wait_timeout, for messages
	WaitNotify     time.Duration // NOTICE a waiting client after this long; 0: never
	// MaxPreparedStatements bounds the statements pgvalve keeps prepared
	// per server in transaction and statement pooling; 0 turns tracking
	// off. A client keeps the value it connected with.
	MaxPreparedStatements int
	// CheckDelay (server_check_delay): a server parked at least this long
	// runs an empty query before reuse; 0 checks every time.
	CheckDelay time.Duration
	// IdleTxTimeout (idle_transaction_timeout) ends a client idle inside a
	// transaction; ClientIdleTimeout (client_idle_timeout) one idle outside
	// of one. A client waited on is not woken by a change: a shorter or
	// removed timeout applies when the old one would have fired, one turned
	// on from the client's next message.
	IdleTxTimeout, ClientIdleTimeout time.Duration
	// QueryTimeout (query_timeout) cancels a request the server has not
	// answered, then gives up on the server; a request runs under the value
	// in force when it started. 0: off.
	QueryTimeout time.Duration
	// QueryText (log_query_text) keeps each client's last query head for
	// the list of live sessions and slow-query lines; SlowQuery
	// (log_slow_query) logs a request answered after longer (0: off).
	QueryText bool
	SlowQuery time.Duration
}

// Env is what every session shares. It is built once by the app.
type Env struct {
	Log     *slog.Logger
	Cancels *cancel.Registry
	// live is read with one atomic load where a setting is used, so a
	// reload costs the relay no lock.
	live atomic.Pointer[Live]
	// handOff, when set, is where draining clients go (handoff.go).
	handOff atomic.Pointer[HandOffFunc]
	// Drain, when done, asks sessions to end at their next safe point
	// (graceful shutdown); the context passed to Serve ends them at once.
	Drain context.Context
	// Knobs are test seams; nil in production.
	Knobs *Knobs
	// Errors counts the errors pgvalve itself tells clients (not the ones
	// it relays from servers), by SQLSTATE.
	Errors observe.Codes
	// Lot, if set, is where idle clients park (park.go); nil: they never do.
	Lot *park.Lot
}

// Live returns the settings in force now; the caller must not change them.
func (e *Env) Live() *Live { return e.live.Load() }

// SetLive puts new settings in force (a reload).
func (e *Env) SetLive(l Live) { e.live.Store(&l) }

// Knobs let tests break invariants on purpose, to prove the checks that
// guard them can fail.
type Knobs struct {
	// SkipRelease, when it returns true, makes the session drop a lease
	// without releasing it (its server is closed, its counters are not).
	SkipRelease func() bool
	// BeforeForward runs before each client batch is sent to a server,
	// with the batch; a test may panic in it to check that one session's
	// panic ends only that session and returns its server.
	BeforeForward func(span []byte)
	// UnderLock runs where the batch is booked, while the session's lock
	// is held (as the statement tracker and the detector run); a panic
	// there must end only that session too.
	UnderLock func(span []byte)
	// BeforeDeliver runs in the server side with the answers it has
	// scanned (and counted), before it writes them to the client.
	BeforeDeliver func(span []byte)
	// SkipStreamedBookkeeping makes the statement tracker skip messages
	// bigger than the read buffer, the defect that once turned a long
	// simple query that ran into an 08006 error.
	SkipStreamedBookkeeping bool
}

// Session is one client connection.
type Session struct {
	// own is what the session undoes as it ends, on whichever goroutine
	// ends it (it may have parked: park.go).
	own cleanup.Stack
	pk  parking
	key cancel.Key

	env    *Env
	conn   net.Conn
	rd     *wire.Reader
	sock   io.ReadWriter // conn's hot path: see wire.Socket
	remote string        // the client's address, for logs
	user   string
	db     string
	route  *Route       // shared with the route's other clients: read only
	params []wire.Param // settings to apply on every server this client uses
	id     uint64       // tells this client's server changes from others' (backend.MarkDirty)
	// status is the client's entry in the list of live sessions (may be
	// nil); only the session goroutine and the server side set it.
	status *Status
	// view is the client view (what the client was told of its
	// settings), nil while lent to a server side: see clientView.
	view *clientView
	// last is the most recent link, whose server side may still be
	// exiting; only the session goroutine touches it (reclaim).
	// runSide starts the server side of last (linkFor).
	last    *link
	runSide func()
	// timed: the idle timeouts were on at the last read; lastRead is kept
	// only while they are.
	timed bool
	// txLost: the client's transaction went with a lost server; its next
	// server starts in a failed transaction block (enterLostTx).
	txLost bool
	// partialSent says the last span sent ended inside a message, whose
	// rest is still to come.
	partialSent bool
	// queueCancellable: the batch waiting for a server can be answered
	// without one if the client cancels it (it ends its requests).
	queueCancellable bool
	// maxStmts is max_prepared_statements as the client connected. It
	// and the flags sit together, with no padding between them: a Session
	// of at most 768 bytes fits a size class 128 bytes smaller, on every
	// idle client (TestASessionFitsItsSizeClass).
	maxStmts int32
	// lostWhy: the client has not heard of that loss yet (it was idle in
	// its transaction); its next request is told.
	lostWhy error
	// skip is how many bytes still to come belong to a message answered
	// already without a server: they are dropped, not forwarded.
	// firstFrame is where the first message that starts in the batch
	// being read starts (-1: none).
	skip       int
	firstFrame int
	// watch watches the client while it waits for a server; made at its
	// first wait (acquire), read by CancelCurrent on another goroutine.
	watch atomic.Pointer[waitWatch]
	// lastRead is when the client last sent something, for the idle
	// timeouts (set only when one is on), as an offset from clockBase:
	// a time.Time would take 24 bytes.
	lastRead time.Duration
	// tr tracks named prepared statements in transaction and statement
	// pooling (nil otherwise, and until the client's first batch:
	// startBatches); calls hold mu.
	tr *stmt.Tracker
	// scratch is the client side's space for the batch it forwards; a
	// parked client has none (nil: park.go).
	*scratch

	// detect: transaction or statement pooling looks for session state
	// (session_state is not "off"); pinAll: any of it pins the client
	// until it leaves ("pin-all"). stmtFx holds the texts of the client's
	// prepared statements that have effects, by name (effectsOf); only
	// the client side touches it.
	stmtFx map[string]string

	// inbox holds notifications from route.Notify on their way to the
	// client (nil until its first LISTEN through it); inboxReady: its
	// writer runs. Only the client side sets it, while no server side
	// runs.
	inbox *inbox

	inboxReady, detect, pinAll bool
	// quiet: the batch being forwarded has no session-state effects
	// (lookAhead).
	quiet bool
	// wmu is held while the client side books and writes a batch, and
	// while the server side puts the client's settings back (resync), so
	// the two never write to the server at once.
	wmu sync.Mutex
	// idleWanted says awaitIdle waits: the server side then tells it when
	// it has relayed the last answer.
	idleWanted atomic.Bool
	// owed: the server side has counted the last answer awaited (pending
	// is 0) and not yet written it to the client. awaitIdle waits for it:
	// ending the link then would cut that write short, and the client
	// would hear its FATAL without the answers that came before.
	owed atomic.Bool
	// wakeAfter: wake the client side once the owed answer is written
	// (a drain ends a pinned client there).
	wakeAfter atomic.Bool

	// mu guards the link and its protocol state. Lock order: mu before
	// link; never held across I/O.
	mu struct {
		sync.Mutex
		cur *link
		st  txState
		// state is the session state the client made (nil until its first
		// batch: startBatches), whose fields pins and sets read as mu's.
		*state
		draining bool
		// pinSlot: the client counts in route.Pinned (countPinLocked).
		pinSlot bool
		// qCancelled: the request query_timeout gave up on was cancelled
		// already.
		qCancelled bool
		// answered, when set, is closed once the tracker awaits no more
		// answers (awaitAnswers); allAnswered once no request does and
		// the answers are relayed (awaitIdle).
		answered, allAnswered chan struct{}

		idleSince time.Time     // the last answer that left the client waited on
		qTimer    *time.Timer   // query_timeout; runs queryTimedOut
		qLimit    time.Duration // the query_timeout it was armed with
		qArmed    time.Time     // when the oldest running request started

		// busySince is when the requests being answered started, and
		// xactSince when the open transaction did; kept only with a Meter.
		busySince, xactSince time.Time
	}

	// link is the server this client holds now. Cancel requests hold the
	// read lock while they are delivered, and unlinking takes the write
	// lock, so a cancel can never land on a server already given to another
	// client.
	cancelTo struct {
		sync.RWMutex
		srv *backend.Conn
	}
}

// state is the session state a client makes with its batches.
type state struct {
	// pins is the session state holding the client on its server.
	pins pins
	// sets are the settings the client made itself, which follow it.
	sets clientSets
}

// scratch is what the client side grows to forward batches, kept apart
// so that a parked client drops it all at once.
type scratch struct {
	// frames is the client batch being forwarded, for the tracker.
	frames []wire.Frame
	types  []byte // the batch's message types that txState counts
	// segTypes is types for a part of a batch, waitBuf a part of a batch
	// and a Flush (forwardTracked).
	segTypes, waitBuf []byte

	batch    []stmt.Message
	deferBuf []byte
	// raised replaces the batch being forwarded when a pin was refused
	// inside a transaction (raisePinRefused).
	raised []byte
}

// Client is a logged-in client, handed over by the front door with its
// connection: the relay owns it from then on (the front door still closes
// it once Run returns).
type Client struct {
	Conn net.Conn
	// Reader reads Conn through Sock, the relay's socket (wire.Socket); it
	// may hold bytes the client sent already.
	Reader *wire.Reader
	Sock   io.ReadWriter
	// Remote is the client's address, for logs: the session adds it, the
	// user and the database to each line it logs (a logger of its own
	// would cost every idle client a few hundred bytes).
	Remote string
	User   string
	// Database is the database the client asked for; Route is where it
	// leads (zero for the admin console).
	Database string
	Route    *Route
	// Params are the startup settings to apply on every server the client
	// uses (backend.StartupParams).
	Params []wire.Param
	// Status is the client's entry in the list of live sessions; nil when
	// nobody lists it. The relay keeps its state.
	Status *Status
	// Ends, if set, is what the layers above undo when the client ends:
	// the relay may then park an idle client, return ErrParked, and run
	// Ends itself when the client ends later on another goroutine.
	Ends *cleanup.Stack
}

// Run greets a logged-in client and relays its requests until it leaves or
// fails, or until it is parked while idle (ErrParked: see Client.Ends); it
// leaves closing the connection to the caller.
func Run(ctx context.Context, env *Env, c Client) error {
	s := newSession(ctx, env, c)
	s.keyed(env.Cancels.Register(s))
	return s.proceed(ctx, s.serve)
}

// newSession makes the session of c and lets the app reach it through its
// Status (a drain that began before sees it here).
func newSession(ctx context.Context, env *Env, c Client) *Session {
	s := &Session{env: env, conn: c.Conn, rd: c.Reader, sock: c.Sock, remote: c.Remote,
		user: c.User, db: c.Database, route: c.Route, params: c.Params, status: c.Status,
		scratch: new(scratch)}
	if s.status != nil {
		s.status.meter.Store(s.route.Meter) // before anything can count a hold
	}
	s.status.set(Idle, 0, time.Now())
	s.preparePark(ctx, c.Ends) // before the app can reach the session
	s.status.setOwner(s)
	switch {
	case env.Drain == nil:
	case s.status != nil:
		// The app drains every listed client through its Status (one walk,
		// not a context watch per client); one that comes after the walk
		// sees the drain here.
		if env.Drain.Err() != nil {
			s.drain()
		}
	default:
		stopDrain := context.AfterFunc(env.Drain, s.drain)
		s.own.Push(func() { stopDrain() })
	}
	return s
}

// keyed gives the session its cancel key (registered: unregister removes
// it) and what follows from it and from the route.
func (s *Session) keyed(key cancel.Key, unregister func()) {
	s.own.Push(unregister)
	s.key = key
	s.id = uint64(key.PID)<<32 | uint64(binary.BigEndian.Uint32(key.Secret))
	s.maxStmts = int32(min(s.env.Live().MaxPreparedStatements, math.MaxInt32))
	s.detect = s.route.Mode != config.PoolSession && s.route.State != config.StateOff
	s.pinAll = s.detect && s.route.State == config.StatePinAll
	s.rd.SetWhole(s.wholeTypes())
	// Last of the ends: the read buffer goes back to the pool rather than
	// to the collector, or every client would make a new one (16 KiB, most
	// of what a login allocated under pgbench -C). Only the client side
	// reads it, and it has ended.
	s.own.Push(s.rd.Release)
	s.own.Push(s.leaveRoute) // one entry, not one each: every client keeps its entries
}

// log is the logger for this client's lines: its attributes are formatted
// only for a line that is written (most never are, at the default level).
func (s *Session) log() *slog.Logger {
	return clientlog.With(s.env.Log, slog.String("client", s.remote), slog.String("db", s.db), slog.String("user", s.user))
}

// wholeTypes is which client messages must arrive whole: those the
// tracker decodes, and the Queries and Parses whose text may hold session
// state, however long (nil: none).
func (s *Session) wholeTypes() func(byte) bool {
	switch {
	case s.detect:
		return func(typ byte) bool { return typ == 'Q' || typ == 'P' || typ == 'B' || stmt.Decoded(typ) }
	case s.tracks():
		return stmt.Decoded
	}
	return nil
}

// tracks reports whether the client's prepared statements are tracked:
// transaction and statement pooling, with max_prepared_statements on.
func (s *Session) tracks() bool {
	return s.route.Mode != config.PoolSession && s.maxStmts > 0
}

// startBatches makes the client's statement tracker and session state
// once its first batch is read, before it is scanned: a client that never
// sends one (connected, idle) keeps neither. Only a batch starts a server
// side, so none has run yet to see them change.
func (s *Session) startBatches() {
	if s.mu.state != nil || s.rd.Buffered() == 0 {
		return
	}
	s.mu.Lock()
	s.mu.state = new(state)
	if s.tracks() {
		s.tr = stmt.NewTracker(stmt.NewRegistry())
	}
	s.mu.Unlock()
}

// leaveRoute takes a client that leaves off the pool's listening
// connection and out of its pinned count.
func (s *Session) leaveRoute() {
	defer s.unpin()
	s.closeInbox()
}

// unpin takes a client that leaves out of its pool's pinned count.
func (s *Session) unpin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pinSlot {
		s.route.Pinned.put()
		s.mu.pinSlot = false
	}
}

// end tells the client FATAL for r, its message filled in with args, as
// its session ends.
func (s *Session) end(r reason.Reason, args ...any) { s.env.Fatal(s.conn, r, args...) }

// Fatal sends a client about to be closed the FATAL error for r, its
// message filled in with args, and counts it by its SQLSTATE.
func (e *Env) Fatal(conn net.Conn, r reason.Reason, args ...any) {
	e.Errors.Add(r.Code())
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write(r.AppendError(nil, wire.SeverityFatal, args...))
}

// CancelCurrent cancels what this client runs on its server now, if it
// holds one (cancel.Target).
// A request still queued for a server is taken out of the queue instead.
func (s *Session) CancelCurrent(ctx context.Context) error {
	s.cancelTo.RLock()
	if srv := s.cancelTo.srv; srv != nil {
		defer s.cancelTo.RUnlock()
		return srv.Cancel(ctx)
	}
	s.cancelTo.RUnlock()
	if w := s.watch.Load(); w != nil {
		w.cancelQueued()
	}
	return nil
}

func (s *Session) setLink(srv *backend.Conn) {
	s.cancelTo.Lock()
	s.cancelTo.srv = srv
	s.cancelTo.Unlock()
}
