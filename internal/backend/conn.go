// Package backend owns one server connection: it dials and authenticates
// with pgconn, then takes the raw socket over so the relay can frame bytes
// itself. It tracks what the server reports (ParameterStatus, transaction
// status, cancel key) and knows how to reset, cancel and close the
// connection. It never sees a pool or a client.
package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Config says where and as whom to log in.
type Config struct {
	Host     string
	Port     int
	User     string
	Password string
	// EnvPassword lets an empty Password come from pgvalve's environment,
	// as libpq's does: PGPASSWORD, or the password file (PGPASSFILE,
	// ~/.pgpass). Off, an empty Password is sent as empty.
	EnvPassword bool
	Database    string
	// Cred logs in when Password is empty: a stored hash or SCRAM keys
	// (keyedLogin), or a stored password.
	Cred Credential
	// Params are extra libpq keywords (sslmode, connect_timeout, ...) or
	// runtime parameters (application_name, options, ...) from the upstream URL.
	Params map[string]string
	// ConnectTimeout bounds dial plus login when the context has no earlier deadline.
	ConnectTimeout time.Duration
	// MaxMessageSize bounds server messages; 0 means 1 GiB.
	MaxMessageSize int
	// LearnRole has Dial learn whether the server is a standby or
	// read-only (Conn.Role), for target_session_attrs.
	LearnRole bool
	// TLS, when set, says how to try reaching a host, in order (a nil
	// entry: plaintext), in place of the sslmode pgconn would read (see
	// tlsconf.Upstream.Attempts). A URL naming one of urlTLSKeys keeps
	// libpq's own handling of them for its route.
	TLS func(host string) []*tls.Config
}

// Conn is one authenticated server connection. Its owner (whoever holds the
// lease) is the only goroutine that reads, writes or inspects state; Cancel
// and Close may be called from anywhere.
type Conn struct {
	netConn net.Conn      // a *tls.Conn over TLS
	sock    io.ReadWriter // netConn's hot path: see wire.Socket
	peeker  *wire.Peeker  // Alive's look at the socket (under TLS too)
	rd      *wire.Reader
	cancel  cancelTarget
	created time.Time
	role    Role // known when Config.LearnRole asked

	params    map[string]string
	initial   map[string]string // what the server reported at login: its values after RESET ALL
	txStatus  byte
	broken    reason.Reason // set: state unknown, never reuse
	brokenWhy string        // broken's detail, for logs
	idleSince time.Time     // when the connection last went back to its pool
	stmts     *stmt.ServerSet
	// applied holds the non-reported parameters pgvalve set for the
	// current settings; dirty names the client that ran SET or RESET
	// itself since (0: none).
	applied map[string]string
	dirty   uint64
	// sets is the Key of the Sets the client in dirty made that the
	// server holds ("" none, StaleSets unknown).
	sets string
	// synced is the key of the want list the settings last matched
	// (SyncFor); "" after anything that may have changed them.
	synced string
	// reportedKey identifies params by content (ReportedKey); "" when
	// not computed since they changed.
	reportedKey string

	closed atomic.Bool
}

type cancelTarget struct {
	network, address string
	pid              uint32
	secret           []byte
}

// Dial opens and authenticates a server connection. Errors from the server
// (wrong password, missing database) come back as *pgconn.PgError inside the
// chain, so callers can forward the server's own SQLSTATE.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
	}
	pg, err := Connect(ctx, cfg)
	if err != nil {
		return nil, tlsFailure(err, cfg)
	}
	var role Role
	if cfg.LearnRole {
		if role, err = learnRole(ctx, pg); err != nil {
			pg.Close(context.Background())
			return nil, err
		}
	}
	// pgconn's background reader may still hold the socket after login;
	// SyncConn stops it and leaves nothing buffered, as Hijack requires.
	if err := pg.SyncConn(ctx); err != nil {
		pg.Close(context.Background())
		return nil, fmt.Errorf("backend: sync before hijack: %w", err)
	}
	hc, err := pg.Hijack()
	if err != nil {
		pg.Close(context.Background())
		return nil, fmt.Errorf("backend: hijack: %w", err)
	}
	maxLen := cfg.MaxMessageSize
	if maxLen <= 0 {
		maxLen = 1 << 30
	}
	if kl, ok := hc.Conn.(*keyedLogin); ok {
		if hc.Conn = kl.Unwrap(); hc.Conn == nil {
			kl.Conn.Close()
			return nil, errors.New("backend: login left bytes unread")
		}
	}
	c := &Conn{
		netConn:   hc.Conn,
		sock:      wire.NewSocket(hc.Conn),
		created:   time.Now(),
		role:      role,
		idleSince: time.Now(),
		params:    hc.ParameterStatuses,
		initial:   maps.Clone(hc.ParameterStatuses),
		txStatus:  hc.TxStatus,
		cancel:    cancelTarget{pid: hc.PID, secret: hc.SecretKey},
	}
	c.peeker = wire.NewPeeker(tcpOf(hc.Conn))
	c.rd = wire.NewReader(c.sock, wire.DefaultBufferSize, maxLen)
	c.rd.SetWhole(decoded)
	c.cancel.network, c.cancel.address = cancelAddr(hc.Conn, cfg)
	return c, nil
}

// Connect logs in as cfg says and returns pgconn's connection, for
// pgvalve's own queries over the extended protocol (auth_query); Dial
// takes the socket over from it. Errors are as Dial's.
func Connect(ctx context.Context, cfg Config) (*pgconn.PgConn, error) {
	pcfg, err := pgconn.ParseConfig(connString(cfg))
	if err != nil {
		return nil, fmt.Errorf("backend: config: %w", err)
	}
	// Only runtime parameters named in the upstream URL travel: PG* variables
	// in pgvalve's own environment must not change every server's session.
	for k := range pcfg.RuntimeParams {
		if _, ok := cfg.Params[k]; !ok {
			delete(pcfg.RuntimeParams, k)
		}
	}
	if cfg.TLS != nil && !urlNamesTLS(cfg.Params) {
		setTLS(pcfg, cfg.TLS)
	}
	useCredential(pcfg, cfg)
	if cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
	}
	return pgconn.ConnectConfig(ctx, pcfg)
}

// useCredential makes pgconn log in with cfg.Cred when the configuration
// gives no password: a stored password as such, a hash or keys through
// keyedLogin, which also does the channel binding pgconn would have done.
func useCredential(pcfg *pgconn.Config, cfg Config) {
	switch {
	case cfg.Password != "" || cfg.Cred.Empty():
	case cfg.Cred.Password != "":
		pcfg.Password = cfg.Cred.Password
	default:
		binding, user, cred := pcfg.ChannelBinding, pcfg.User, cfg.Cred
		pcfg.ChannelBinding = "disable" // pgconn sees only AuthenticationOk
		pcfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
			return &keyedLogin{Conn: conn, cred: cred, user: user, binding: binding}, nil
		}
	}
}

// decoded reports whether server messages of type typ are decoded on the
// relay's path, so they are read whole even when bigger than the buffer:
// an ErrorResponse (a FATAL, a statement error the tracker reads), a
// ParameterStatus (settings that follow the client), and a statement's
// description, ParameterDescription and RowDescription (its shape, see
// stmt). A long error is common: PostgreSQL quotes the input it could not
// parse.
func decoded(typ byte) bool {
	switch typ {
	case 'E', 'S', 't', 'T':
		return true
	}
	return false
}

// cancelAddr picks where a CancelRequest goes: the peer actually reached
// (a host list or DNS may have chosen it), except for unix sockets, whose
// peer name is relative.
func cancelAddr(c net.Conn, cfg Config) (network, address string) {
	ra := c.RemoteAddr()
	if ra.Network() != "unix" {
		return ra.Network(), ra.String()
	}
	return pgconn.NetworkAddress(cfg.Host, uint16(cfg.Port))
}

func connString(cfg Config) string {
	kv := map[string]string{
		"host":     cfg.Host,
		"port":     fmt.Sprint(cfg.Port),
		"user":     cfg.User,
		"password": cfg.Password,
		"dbname":   cfg.Database,
	}
	for k, v := range cfg.Params {
		kv[k] = v
	}
	var b strings.Builder
	for k, v := range kv {
		// An empty value the URL names explicitly is kept, so pgconn does
		// not fill it from the environment.
		if _, named := cfg.Params[k]; v == "" && !named && (k != "password" || cfg.EnvPassword) {
			continue
		}
		b.WriteString(k)
		b.WriteString("='")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
		b.WriteString("' ")
	}
	return b.String()
}

// TLS returns the state of the connection's TLS; false without TLS.
func (c *Conn) TLS() (tls.ConnectionState, bool) {
	if tc, ok := c.netConn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// NetConn is the socket (a *tls.Conn over TLS), for the relay's writes
// and deadlines.
func (c *Conn) NetConn() net.Conn { return c.netConn }

// Write sends p to the server on the relay's hot path (wire.Socket).
func (c *Conn) Write(p []byte) (int, error) { return c.sock.Write(p) }

// Reader frames what the server sends. Bytes left in it belong to this
// connection, so one reader lives as long as the connection.
func (c *Conn) Reader() *wire.Reader { return c.rd }

// PID is the server process id, as PostgreSQL's pg_stat_activity shows it.
func (c *Conn) PID() uint32 { return c.cancel.pid }

// Created is when the connection was opened.
func (c *Conn) Created() time.Time { return c.created }

// Statements is the set of statements pgvalve prepared on this server,
// created on first use with room for max.
func (c *Conn) Statements(max int) *stmt.ServerSet {
	if c.stmts == nil {
		c.stmts = stmt.NewServerSet(max)
	}
	return c.stmts
}

// SetIdle records that the connection goes back to its pool now.
func (c *Conn) SetIdle(now time.Time) { c.idleSince = now }

// IdleFor is how long the connection has been parked, as of now.
func (c *Conn) IdleFor(now time.Time) time.Duration { return now.Sub(c.idleSince) }

// TxStatus is the status byte of the last ReadyForQuery seen.
func (c *Conn) TxStatus() byte { return c.txStatus }

// Params returns a copy of the server's reported parameters.
func (c *Conn) Params() map[string]string {
	return maps.Clone(c.params)
}

// ReportedParams iterates over the server's reported parameters without
// copying them; only the connection's owner may call it.
func (c *Conn) ReportedParams() iter.Seq2[string, string] { return maps.All(c.params) }

// ReportedKey identifies the reported parameters by content: two servers
// (or one, at two times) with the same key report the same values.
func (c *Conn) ReportedKey() string {
	if c.reportedKey == "" {
		ps := make([]wire.Param, 0, len(c.params))
		for _, name := range slices.Sorted(maps.Keys(c.params)) {
			ps = append(ps, wire.Param{Name: name, Value: c.params[name]})
		}
		c.reportedKey = "reported\x00" + ParamsKey(ps) // never "", even with no params
	}
	return c.reportedKey
}

// Param returns one reported parameter.
func (c *Conn) Param(name string) string { return c.params[name] }

// Observe updates tracked state from a server message the relay forwarded.
// Only ReadyForQuery and ParameterStatus matter; others are ignored.
func (c *Conn) Observe(f wire.Frame) {
	if f.Body != nil {
		c.observe(f.Type, f.Body)
	}
}

// MarkBroken records that the connection's protocol state is unknown (a
// client left mid-query, an I/O error): it will be closed, never reused.
// The first reason stays; detail (often an error's text) is for logs.
func (c *Conn) MarkBroken(r reason.Reason, detail string) {
	if c.broken == reason.None {
		c.broken, c.brokenWhy = r, detail
	}
}

// Broken returns why the connection may not be reused, as log text, or "".
func (c *Conn) Broken() string {
	if c.broken == reason.None {
		return ""
	}
	return c.broken.Describe(c.brokenWhy)
}

// BrokenReason returns why the connection may not be reused, or reason.None.
func (c *Conn) BrokenReason() reason.Reason { return c.broken }

// Reusable reports whether another client may use the connection: open,
// not broken, idle outside a transaction, nothing unread or half-read.
func (c *Conn) Reusable() bool {
	return !c.closed.Load() && c.broken == reason.None && c.txStatus == 'I' && c.rd.Buffered() == 0 && !c.rd.InMessage()
}

// ErrClosed is returned by operations on a closed connection.
var ErrClosed = errors.New("backend: connection closed")

// Close sends Terminate and closes the socket. Safe to call more than once
// and from any goroutine.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	_ = c.netConn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.netConn.Write([]byte{'X', 0, 0, 0, 4})
	if tc, ok := c.netConn.(*tls.Conn); ok {
		// Terminate says goodbye already; a close_notify after it could
		// wait up to 5 s more on a server that stopped reading.
		return tc.NetConn().Close()
	}
	return c.netConn.Close()
}

// Cancel asks the server to cancel whatever this connection runs now, the
// way libpq does: a CancelRequest on a new connection to the same server.
func (c *Conn) Cancel(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, c.cancel.network, c.cancel.address)
	if err != nil {
		return fmt.Errorf("backend: cancel: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	req := pgproto3.CancelRequest{ProcessID: c.cancel.pid, SecretKey: c.cancel.secret}
	buf, err := req.Encode(nil)
	if err != nil {
		return err
	}
	if _, err := nc.Write(buf); err != nil {
		return fmt.Errorf("backend: cancel: %w", err)
	}
	// The server closes the socket when it has handled the request; waiting
	// for that makes the cancel delivered before we return.
	var one [1]byte
	_, _ = nc.Read(one[:])
	return nil
}
