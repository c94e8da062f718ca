// Package frontend owns a client's front door: the packets before login
// (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), protocol
// negotiation, startup validation, route lookup, authentication, the login
// timeout and the max_client_conn refusal. It then hands the logged-in
// client on: to the session relay, or (once it exists) to the admin
// console. It never holds a server.
package frontend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/xdg-go/scram"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/cleanup"
	"github.com/pgvalve/pgvalve/internal/clientlog"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/console"
	"github.com/pgvalve/pgvalve/internal/hba"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Config is what every front door shares. It is built once by the app.
type Config struct {
	Log  *slog.Logger
	Auth config.AuthMode
	// Relay is the session relay's environment; the front door reads the
	// live settings, the cancel registry and the drain signal from it.
	Relay *session.Env
	// Lookup finds the route for a client; ok=false means no such database.
	Lookup func(db, user string) (*session.Route, bool)
	// Verify proves a passthrough client's password against the upstream.
	Verify func(ctx context.Context, db, user, password string) error
	// HBA is auth_hba_file's rules as they are now (auth_type hba;
	// reloads replace them).
	HBA func() *hba.Rules
	// Secret finds the stored secret of a user logging in to db: auth_file's
	// as it is now (reloads replace it), else auth_query's. found=false is
	// an unknown user; an error is a lookup that could not be made. Decoy
	// keys the fake SCRAM verifier of unknown users.
	Secret func(ctx context.Context, db, user string) (secret auth.Secret, found bool, err error)
	Decoy  []byte
	// Learned keeps what each successful login teaches about logging in
	// to the server as that user (nil: nothing is kept).
	Learned *auth.Credentials
	// TLS is the TLS offered to clients now (nil: none; reloads replace it).
	TLS func() *tlsconf.Server
	// Throttle slows repeated failed logins from one address (nil: none).
	Throttle *auth.Throttle
	// Console serves a logged-in client of the admin console instead of
	// the relay (see handoff). nil: there is no console yet, and its
	// database names are ordinary databases.
	Console func(ctx context.Context, c session.Client) error
}

// door is one client at the front door.
type door struct {
	cfg  *Config
	conn net.Conn // the TLS connection once tls is set
	// sock reads and writes conn: a wire.Socket's raw system calls while
	// conn is a plain socket (each login's first reads and writes would
	// otherwise go through the scheduler's syscall path, see wire.Socket),
	// conn itself once it is TLS.
	sock io.ReadWriter
	log  *slog.Logger
	// remote is the client's address (ClientAddr), the relay's for its logs.
	remote string
	// ends, when the caller gave them, are handed to the relay, which may
	// park the client and end it on another goroutine.
	ends *cleanup.Stack
	// tlsSrv is the TLS configuration this client is offered (nil: none);
	// tls says the connection is encrypted, binding is its SCRAM channel
	// binding (tls-server-end-point).
	tlsSrv  *tlsconf.Server
	tls     bool
	binding *scram.ChannelBinding
	// local says the client came in on the unix socket: it is offered no
	// TLS (as PostgreSQL and PgBouncer) and needs none.
	local bool
	// loginBy is when client_login_timeout ends the login; handedOff says
	// the login is over (the relay or console has the client).
	loginBy   time.Time
	handedOff bool
	gate      Gate
}

// Gate is the client's place at admission (internal/admission): Talking
// once its startup packet is read, Admit once it has logged in (whether
// it fits under max_client_conn). Nil funcs always let it through.
type Gate struct {
	Talking func()
	Admit   func() bool
}

// admitted checks that a client that has logged in fits under
// max_client_conn; one that does not gets 53300.
func (d *door) admitted() error {
	if d.gate.Admit == nil || d.gate.Admit() {
		return nil
	}
	return d.refuse(reason.TooManyClients)
}

// loginTimedOut tells a client whose login outlasted client_login_timeout
// why it is closed, and logs it, instead of closing it silently.
func (d *door) loginTimedOut(err error, limit time.Duration) {
	var ne net.Error
	if err == nil || d.handedOff || !errors.As(err, &ne) || !ne.Timeout() || time.Now().Before(d.loginBy) {
		return // not the login deadline (a drain also wakes reads)
	}
	d.cfg.Relay.Fatal(d.conn, reason.LoginTimeout, limit)
	d.log.Info(reason.LoginTimeout.Log(), "client_login_timeout", limit)
}

// Serve runs a client connection to its end and closes it: the front door,
// then whatever handoff chose. A panic inside is recovered and ends only
// this client. st, if not nil, is the client's entry in the list of live
// sessions: the front door records who logged in, the relay its state.
//
// Serve does not watch ctx: whoever ends it calls Wake afterwards (one
// watch per client would cost every idle client half a kilobyte).
//
// ends is what the layers above undo when the connection is done (nil:
// nothing); Serve adds its own and runs them all as it returns, unless the
// relay parked the client (session.ErrParked): the relay then owns them
// and runs them when the client ends on another goroutine.
func Serve(ctx context.Context, cfg *Config, conn net.Conn, st *session.Status, gate Gate, ends *cleanup.Stack) {
	var addr string // ClientAddr's, made once when the client was listed
	if st != nil {
		addr = st.Remote
	} else {
		addr = ClientAddr(conn)
	}
	d := &door{cfg: cfg, conn: conn, sock: wire.NewSocket(conn), gate: gate, local: IsLocal(conn),
		log: clientlog.With(cfg.Log, slog.String("client", addr)), remote: addr}
	if ends != nil {
		d.ends = ends // the relay may take them over and park the client
	} else {
		ends = new(cleanup.Stack)
	}
	ends.Push(func() { _ = conn.Close() })
	parked := false
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("session panic", "panic", r, "stack", string(debug.Stack()))
			d.cfg.Relay.Fatal(conn, reason.Panic)
		}
		if !parked {
			ends.Run()
		}
	}()
	err := d.run(ctx, st)
	parked = errors.Is(err, session.ErrParked)
	if err != nil && !parked {
		d.log.Debug("session ended", "err", err)
	}
}

// Wake ends whatever a client served by Serve waits for (a read at the
// front door, the relay's wait, parked or not), so that it sees that its
// context ended. Call it after ending the context.
func Wake(conn net.Conn, st *session.Status) {
	_ = conn.SetDeadline(time.Unix(1, 0))
	st.Wake()
}

// Refuse answers a client that is over max_client_conn: it reads the
// startup packet (declining SSL) and sends a FATAL 53300.
func Refuse(cfg *Config, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	d := &door{cfg: cfg, conn: conn, sock: conn, log: cfg.Log, local: IsLocal(conn), remote: ClientAddr(conn)}
	st, err := d.readStartup()
	switch {
	case err != nil:
	case st.Kind == wire.KindCancel:
		// A full house is when a runaway query most needs cancelling.
		_ = d.forwardCancel(context.Background(), st.Cancel)
	default:
		d.cfg.Relay.Fatal(d.conn, reason.TooManyClients)
		user, _ := st.Get("user")
		d.log.Info("login refused", "client", d.remote, "user", user,
			"code", reason.TooManyClients.Code(), "reason", reason.TooManyClients.Log())
	}
}

// run is the front door, top to bottom.
func (d *door) run(ctx context.Context, status *session.Status) (err error) {
	live := d.cfg.Relay.Live()
	if live.LoginTimeout > 0 {
		d.loginBy = time.Now().Add(live.LoginTimeout)
		_ = d.conn.SetDeadline(d.loginBy)
		defer func() { d.loginTimedOut(err, live.LoginTimeout) }()
	}
	if ctx.Err() != nil {
		// Ended before the deadline above was set, which may have undone
		// Wake's: a wake after this check finds the deadline set.
		return context.Cause(ctx)
	}
	// A drain (graceful shutdown) ends a client still logging in; the
	// relay watches for it itself once the client is handed over.
	if drain := d.cfg.Relay.Drain; drain != nil {
		stopDrain := context.AfterFunc(drain, func() { _ = d.conn.SetReadDeadline(time.Unix(1, 0)) })
		defer stopDrain()
	}
	st, err := d.readStartup()
	if err != nil {
		return err
	}
	if d.gate.Talking != nil {
		d.gate.Talking()
	}
	if st.Kind == wire.KindCancel {
		return d.forwardCancel(ctx, st.Cancel)
	}
	c, err := d.checkStartup(st)
	if err != nil {
		return err
	}
	if d.tlsSrv != nil && d.tlsSrv.Settings().Required() && !d.tls && !d.local {
		return d.refuse(reason.TLSRequired, d.host(), c.User, c.Database)
	}
	status.SetLogin(session.LoginOf(c.User, c.Database, c.Params))
	c.Status = status
	c.Sock = d.sock
	c.Reader = wire.NewReader(c.Sock, wire.DefaultBufferSize, live.MaxMessageSize)
	if d.toConsole(c.Database) {
		if err := d.authenticate(ctx, c); err != nil {
			return err
		}
		if err := d.admitted(); err != nil {
			return err
		}
		_ = d.conn.SetDeadline(time.Time{})
		d.handedOff = true
		return d.cfg.Console(ctx, c)
	}
	route, ok := d.cfg.Lookup(c.Database, c.User)
	if !ok {
		d.cfg.Relay.Fatal(d.conn, reason.NoSuchDatabase, c.Database)
		d.refused(reason.NoSuchDatabase.Code(), reason.NoSuchDatabase.Message(c.Database))
		return errNoRoute(c.Database)
	}
	if route.Leave != nil {
		if d.ends != nil {
			d.ends.Push(route.Leave) // the client may end on another goroutine
		} else {
			defer route.Leave()
		}
	}
	if err := d.authenticate(ctx, c); err != nil {
		return err
	}
	if err := d.admitted(); err != nil {
		return err
	}
	_ = d.conn.SetDeadline(time.Time{})
	d.handedOff = true
	c.Route = route
	c.Ends = d.ends
	return session.Run(ctx, d.cfg.Relay, c)
}

// toConsole is the handoff decision, the one place that chooses between
// the admin console and the session relay: a client asking for a console
// database goes to the console when there is one; everyone else, and
// everyone while Console is nil, goes to the relay.
func (d *door) toConsole(db string) bool {
	return d.cfg.Console != nil && console.IsConsole(db)
}
