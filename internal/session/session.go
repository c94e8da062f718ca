// Package session runs one client connection: startup, authentication,
// the pool-mode policy and the relay. It is the only place that holds both
// a client socket and a lease on a server.
package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/pool"
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
}

// Env is what every session shares. It is built once by the app.
type Env struct {
	Log     *slog.Logger
	Cancels *cancel.Registry
	Auth    config.AuthMode
	// live is read with one atomic load where a setting is used, so a
	// reload costs the relay no lock.
	live atomic.Pointer[Live]
	// Drain, when done, asks sessions to end at their next safe point
	// (graceful shutdown); the context passed to Serve ends them at once.
	Drain context.Context
	// Lookup finds the route for a client; ok=false means no such database.
	Lookup func(db, user string) (Route, bool)
	// Verify proves a passthrough client's password against the upstream.
	Verify func(ctx context.Context, db, user, password string) error
	// Knobs are test seams; nil in production.
	Knobs *Knobs
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
	// SkipStreamedBookkeeping makes the statement tracker skip messages
	// bigger than the read buffer, the defect that once turned a long
	// simple query that ran into an 08006 error.
	SkipStreamedBookkeeping bool
}

// Session is one client connection.
type Session struct {
	env    *Env
	conn   net.Conn
	rd     *wire.Reader
	sock   io.ReadWriter // conn's hot path: see wire.Socket
	log    *slog.Logger
	user   string
	db     string
	route  Route
	params []wire.Param // settings to apply on every server this client uses
	id     uint64       // tells this client's server changes from others' (backend.MarkDirty)
	want   []wire.Param // reused by wantedParams
	// maxStmts is max_prepared_statements as the client connected.
	maxStmts int
	// timed: the idle timeouts were on at the last read; lastRead is kept
	// only while they are.
	timed bool
	// wantKey is backend.ParamsKey(want), toldKey the ReportedKey of the
	// server whose reports the client was last brought up to date with;
	// both "" when reported changes. They let attach skip its checks.
	wantKey, toldKey string
	// reported is what the client has been told each parameter is. The
	// session goroutine and the server side take turns with it: a server
	// side runs only while linked, and a new one starts after the old ends.
	reported map[string]string
	// last is the most recent link, whose server side may still be
	// exiting; only the session goroutine touches it.
	last *link
	// txLost: the client's transaction went with a lost server; its next
	// server starts in a failed transaction block (enterLostTx).
	txLost bool
	// lostWhy: the client has not heard of that loss yet (it was idle in
	// its transaction); its next request is told.
	lostWhy error
	// skip is how many bytes still to come belong to a message answered
	// already without a server: they are dropped, not forwarded.
	// partialSent says the last span sent ended inside a message, whose
	// rest is still to come; firstFrame is where the first message that
	// starts in the batch being read starts (-1: none).
	skip        int
	partialSent bool
	firstFrame  int
	// queueCancellable: the batch waiting for a server can be answered
	// without one if the client cancels it (it ends its requests).
	queueCancellable bool
	// watch watches the client while it waits for a server.
	watch waitWatch
	// lastRead is when the client last sent something, for the idle
	// timeouts (set only when one is on).
	lastRead time.Time
	// tr tracks named prepared statements in transaction and statement
	// pooling (nil otherwise); calls hold mu. frames is the client batch
	// being forwarded, for it.
	tr     *stmt.Tracker
	frames []wire.Frame
	types  []byte // the batch's message types that txState counts
	// segTypes is types for a part of a batch, waitBuf a part of a batch
	// and a Flush (forwardTracked).
	segTypes, waitBuf []byte

	batch    []stmt.Message
	deferBuf []byte

	// wmu is held while the client side books and writes a batch, and
	// while the server side puts the client's settings back (resync), so
	// the two never write to the server at once.
	wmu sync.Mutex
	// answerEdits rewrites server messages for the client when no
	// statement tracker does (resetReport).
	answerEdits wire.Edits
	// idleWanted says awaitIdle waits: the server side then tells it when
	// it has relayed the last answer.
	idleWanted atomic.Bool

	// mu guards the link and its protocol state. Lock order: mu before
	// link; never held across I/O.
	mu struct {
		sync.Mutex
		cur      *link
		st       txState
		draining bool
		// answered, when set, is closed once the tracker awaits no more
		// answers (awaitAnswers); allAnswered once no request does and
		// the answers are relayed (awaitIdle).
		answered, allAnswered chan struct{}

		idleSince  time.Time     // the last answer that left the client waited on
		qTimer     *time.Timer   // query_timeout; runs queryTimedOut
		qLimit     time.Duration // the query_timeout it was armed with
		qArmed     time.Time     // when the oldest running request started
		qCancelled bool          // it was cancelled already
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

// Serve runs a client connection to its end and closes it. A panic inside
// is recovered and ends only this session.
func Serve(ctx context.Context, env *Env, conn net.Conn) {
	s := &Session{env: env, conn: conn, log: env.Log.With("client", conn.RemoteAddr().String())}
	defer conn.Close()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panic", "panic", r, "stack", string(debug.Stack()))
			s.fatal(wire.CodeInternalError, "internal error in pgvalve")
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if env.Drain != nil {
		stopDrain := context.AfterFunc(env.Drain, s.drain)
		defer stopDrain()
	}
	if err := s.run(ctx); err != nil {
		s.log.Debug("session ended", "err", err)
	}
}

// Refuse answers a client that is over max_client_conn: it reads the
// startup packet (declining SSL) and sends a FATAL 53300.
func Refuse(env *Env, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	s := &Session{env: env, conn: conn, log: env.Log}
	st, err := s.readStartup()
	switch {
	case err != nil:
	case st.Kind == wire.KindCancel:
		// A full house is when a runaway query most needs cancelling.
		_ = s.forwardCancel(context.Background(), st.Cancel)
	default:
		s.fatal(wire.CodeTooManyConnections, "no more connections allowed (max_client_conn)")
	}
}

func (s *Session) fatal(code, msg string) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.conn.Write(wire.AppendError(nil, wire.SeverityFatal, code, msg))
}

// readStartup reads packets until a StartupMessage or CancelRequest,
// declining SSL and GSS encryption.
func (s *Session) readStartup() (*wire.Startup, error) {
	for {
		st, err := wire.ReadStartup(s.conn)
		if err != nil {
			if errors.Is(err, wire.ErrBadStartup) {
				s.fatal(wire.CodeProtocolViolation, "invalid startup packet layout")
			}
			return nil, err
		}
		switch st.Kind {
		case wire.KindSSLRequest, wire.KindGSSENCRequest:
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		default:
			return st, nil
		}
	}
}

func (s *Session) run(ctx context.Context) error {
	live := s.env.Live()
	if live.LoginTimeout > 0 {
		_ = s.conn.SetDeadline(time.Now().Add(live.LoginTimeout))
	}
	st, err := s.readStartup()
	if err != nil {
		return err
	}
	if st.Kind == wire.KindCancel {
		return s.forwardCancel(ctx, st.Cancel)
	}
	params, err := s.checkStartup(st)
	if err != nil {
		return err
	}
	s.sock = wire.NewSocket(s.conn)
	s.rd = wire.NewReader(s.sock, wire.DefaultBufferSize, live.MaxMessageSize)
	route, ok := s.env.Lookup(s.db, s.user)
	if !ok {
		s.fatal(wire.CodeInvalidCatalogName, fmt.Sprintf("no such database: %s", s.db))
		return fmt.Errorf("no route for database %q", s.db)
	}
	if route.Leave != nil {
		defer route.Leave()
	}
	if err := s.authenticate(ctx); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	key, unregister := s.env.Cancels.Register(s)
	defer unregister()
	s.route, s.params = route, params
	s.id = uint64(key.PID)<<32 | uint64(binary.BigEndian.Uint32(key.Secret))
	s.maxStmts = live.MaxPreparedStatements
	if route.Mode != config.PoolSession && s.maxStmts > 0 {
		s.tr = stmt.NewTracker(stmt.NewRegistry())
		s.rd.SetWhole(stmt.Decoded)
	}
	return s.serve(ctx, key)
}

// checkStartup validates a StartupMessage and returns the settings to apply
// on servers.
func (s *Session) checkStartup(st *wire.Startup) ([]wire.Param, error) {
	if st.Major != 3 {
		s.fatal(wire.CodeFeatureNotSupported, fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", st.Major, st.Minor))
		return nil, errors.New("unsupported protocol")
	}
	var unknown []string
	var kept []wire.Param
	for _, p := range st.Params {
		if strings.HasPrefix(p.Name, "_pq_.") {
			unknown = append(unknown, p.Name)
			continue
		}
		kept = append(kept, p)
	}
	if st.Minor > 0 || len(unknown) > 0 {
		// pgvalve speaks 3.0; say so the way PostgreSQL does, and go on.
		msg := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}
		if _, err := s.conn.Write(wire.Append(nil, msg)); err != nil {
			return nil, err
		}
	}
	st.Params = kept
	s.user, _ = st.Get("user")
	if s.user == "" {
		s.fatal(wire.CodeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet")
		return nil, errors.New("no user name")
	}
	s.db, _ = st.Get("database")
	if s.db == "" {
		s.db = s.user
	}
	if v, ok := st.Get("replication"); ok && v != "false" && v != "off" && v != "0" && v != "no" {
		s.fatal(wire.CodeFeatureNotSupported, "replication connections are not supported by pgvalve")
		return nil, errors.New("replication connection")
	}
	s.log = s.log.With("db", s.db, "user", s.user)
	params, err := backend.StartupParams(kept)
	if err != nil {
		s.fatal(wire.CodeProtocolViolation, err.Error())
		return nil, err
	}
	return params, nil
}

func (s *Session) authenticate(ctx context.Context) error {
	if s.env.Auth != config.AuthPassthrough {
		return nil
	}
	pw, err := auth.RequestPassword(s.conn, s.rd)
	if err != nil {
		if errors.Is(err, auth.ErrNoPassword) {
			s.fatal(wire.CodeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", s.user))
		}
		return err
	}
	if err := s.env.Verify(ctx, s.db, s.user, pw); err != nil {
		s.sendError(wire.SeverityFatal, err)
		return err
	}
	return nil
}

// forwardCancel handles a CancelRequest connection. PostgreSQL answers
// nothing, whether or not the key was known, and so do we.
func (s *Session) forwardCancel(ctx context.Context, req pgproto3.CancelRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	known, err := s.env.Cancels.Cancel(ctx, req.ProcessID, req.SecretKey)
	if err != nil {
		s.log.Warn("cancel request not delivered", "err", err)
	}
	s.log.Debug("cancel request", "known", known)
	return err
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
	s.watch.cancelQueued()
	return nil
}

func (s *Session) setLink(srv *backend.Conn) {
	s.cancelTo.Lock()
	s.cancelTo.srv = srv
	s.cancelTo.Unlock()
}
