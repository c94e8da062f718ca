// Package console is pgvalve's admin console: what a client gets when it
// logs in to the database pgvalve or pgbouncer. It speaks PgBouncer's
// console language (SHOW POOLS, PAUSE, RELOAD, …) with PgBouncer's column
// names, order and types, so that tools written for PgBouncer (psql
// scripts, prometheus-pgbouncer-exporter, dashboards) read pgvalve too, and
// adds what no pooler has: SHOW HOLDERS, SHOW LATENCY and SHOW DIAGNOSIS.
//
// The console reads pgvalve's state through observe's views, the same
// views the Prometheus exporter and the live page read, so the three never
// disagree.
package console

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Databases are the database names that reach the console instead of a
// pool: pgvalve's own and PgBouncer's, for tools that hard-code it.
var Databases = []string{"pgvalve", "pgbouncer"}

// IsConsole reports whether a client asking for database db wants the
// console.
func IsConsole(db string) bool { return slices.Contains(Databases, db) }

// Role is what a console user may do.
type Role uint8

const (
	// RoleStats may run SHOW commands only (PgBouncer's stats_users).
	RoleStats Role = iota + 1
	// RoleAdmin may run every command (PgBouncer's admin_users).
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleAdmin:
		return "admin"
	case RoleStats:
		return "stats"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Login is the authenticated console user.
type Login struct {
	User string
	Role Role
}

// ErrNotAllowed is what Authorize returns for a user in neither list. The
// front door sends its text as FATAL 28000 (wire.CodeInvalidAuthSpec).
var ErrNotAllowed = errors.New("not allowed to use the pgvalve console")

// Authorize returns user's console role: admin when listed in adminUsers,
// stats when listed in statsUsers; otherwise an error, wrapping
// ErrNotAllowed, whose text names the user and the two settings.
func Authorize(user string, adminUsers, statsUsers []string) (Role, error) {
	switch {
	case slices.Contains(adminUsers, user):
		return RoleAdmin, nil
	case slices.Contains(statsUsers, user):
		return RoleStats, nil
	}
	return 0, fmt.Errorf("user %q is %w (list it in admin_users or stats_users)", user, ErrNotAllowed)
}

// Peer is one instance of a fleet, as SHOW PEERS lists it (PgBouncer's
// columns); Self marks this instance's own entry.
type Peer struct {
	ID   int
	Host string
	Port int
	Self bool
}

// Backend is what the console asks of pgvalve: its state, as observe's
// views and a few console rows, and the admin commands. The app implements
// it. Commands that name a database take "" for every database; they
// return errors whose text the console sends to the client as is (with the
// SQLSTATE of an error that has a SQLState method, PgBouncer's 08P01
// otherwise), so words like "no such database: x" are the Backend's.
type Backend interface {
	observe.Source

	Databases() []Database // sorted by name
	Peers() []Peer         // the fleet's instances ([peers]), sorted by id
	Users() []User         // sorted by name
	Config() []Setting     // sorted by key
	State() State
	// Version is pgvalve's version, "1.2.3".
	Version() string

	// Pause stops handing servers to clients of db and returns once every
	// server of db is back in its pool, as PgBouncer's PAUSE does, or ctx
	// ends.
	Pause(ctx context.Context, db string) error
	Resume(db string) error
	// Reconnect closes db's servers as they come back to their pool.
	Reconnect(db string) error
	// Kill closes db's clients and servers at once, and pauses db.
	Kill(db string) error
	// KillClient closes one client by its ID.
	KillClient(id uint64) error
	// WaitClose returns once db's servers closed by RECONNECT or RELOAD
	// are gone, or ctx ends.
	WaitClose(ctx context.Context, db string) error
	// Reload rereads the configuration file.
	Reload() error
	// Shutdown stops pgvalve in mode. For ShutdownNow the console answers
	// nothing and waits for its ctx to end, as PgBouncer keeps the
	// connection until the process exits.
	Shutdown(mode ShutdownMode) error
}

// ShutdownMode is how SHUTDOWN stops pgvalve (PgBouncer's three modes).
type ShutdownMode uint8

const (
	ShutdownNow            ShutdownMode = iota // SHUTDOWN
	ShutdownWaitForServers                     // SHUTDOWN WAIT_FOR_SERVERS: pause, exit once no server is in use
	ShutdownWaitForClients                     // SHUTDOWN WAIT_FOR_CLIENTS: stop listening, exit once every client has left
)

// Database is one configured database, a row of SHOW DATABASES.
type Database struct {
	Name             string // the name clients ask for
	Host             string
	Port             int
	DBName           string // the database on the server
	ForceUser        string // "" when clients' own user names are used
	PoolSize         int
	MinPoolSize      int
	ReservePoolSize  int
	ServerLifetime   time.Duration
	PoolMode         string // "" when it inherits the default
	LoadBalanceHosts string // "" unless Host lists several hosts
	// MaxConnections caps servers of this database (0: none);
	// CurrentConnections counts them.
	MaxConnections, CurrentConnections int
	// MaxClientConnections caps clients of this database (0: none);
	// CurrentClientConnections counts them.
	MaxClientConnections, CurrentClientConnections int
	Paused, Disabled                               bool
}

// User is one configured user, a row of SHOW USERS.
type User struct {
	Name            string
	PoolSize        int    // -1 when not set for this user
	ReservePoolSize int    // -1 when not set for this user
	PoolMode        string // "" when not set for this user
	// MaxConnections caps this user's servers (0: none); CurrentConnections
	// counts them.
	MaxConnections, CurrentConnections int
	// MaxClientConnections caps this user's clients (0: none);
	// CurrentClientConnections counts them.
	MaxClientConnections, CurrentClientConnections int
}

// Setting is one configuration setting, a row of SHOW CONFIG.
type Setting struct {
	Key, Value, Default string
	Changeable          bool // RELOAD applies it
}

// State is pgvalve's run state, SHOW STATE.
type State struct {
	Paused       bool // a PAUSE of every database is in force
	ShuttingDown bool
}

// SQLSTATEs the console sends besides wire's.
const (
	// CodeInsufficientPrivilege answers a stats user's admin command.
	CodeInsufficientPrivilege = "42501"
	// codeNotice is a notice's "successful completion".
	codeNotice = "00000"
)

// maxQuery bounds the console queries the parser reads; a longer one is an
// invalid command (PgBouncer's words are at most 64 bytes).
const maxQuery = 4096

// Serve runs the console for one client, which the front door has
// authenticated and sent AuthenticationOk: it sends the parameters,
// BackendKeyData and ReadyForQuery, then answers simple queries until the
// client terminates, a message breaks the protocol, or ctx ends (then the
// client gets FATAL 57P01). rd reads from conn and bounds message sizes.
// Serve does not close conn.
func Serve(ctx context.Context, conn net.Conn, rd *wire.Reader, login Login, b Backend) error {
	s := &session{conn: conn, login: login, b: b, now: time.Now}
	// ctx's end interrupts a blocked read and a write to a client that
	// does not read.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	defer stop()

	s.out = s.welcome(s.out[:0])
	if err := s.flush(); err != nil {
		return err
	}
	for {
		typ, body, err := rd.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				if !stop() {
					<-interrupted // its deadline is set: now give the goodbye a second
				}
				conn.SetWriteDeadline(time.Now().Add(time.Second))
				s.out = wire.AppendError(s.out[:0], wire.SeverityFatal, wire.CodeAdminShutdown, "pgvalve is shutting down")
				s.flush()
				return ctx.Err()
			}
			var tooLarge *wire.ErrTooLarge
			if errors.As(err, &tooLarge) || errors.Is(err, wire.ErrMalformed) {
				s.out = wire.AppendError(s.out[:0], wire.SeverityFatal, wire.CodeProtocolViolation, err.Error())
				s.flush()
			}
			return err
		}
		s.out = s.out[:0]
		switch typ {
		case 'Q':
			q, ok := cstring(body)
			if !ok {
				s.out = wire.AppendError(s.out, wire.SeverityFatal, wire.CodeProtocolViolation, "invalid query message: no terminating NUL")
				s.flush()
				return errors.New("console: query without NUL")
			}
			shutdown := s.query(ctx, q)
			if err := s.flush(); err != nil {
				return err
			}
			if shutdown {
				// SHUTDOWN: PgBouncer answers nothing and keeps the
				// connection until the process exits.
				<-ctx.Done()
				return ctx.Err()
			}
		case 'X':
			return nil
		case 'P', 'B', 'E':
			// PgBouncer answers the extended protocol with this error and
			// closes the connection.
			s.out = wire.AppendError(s.out, wire.SeverityError, wire.CodeProtocolViolation,
				"extended query protocol not supported by admin console")
			s.flush()
			return fmt.Errorf("console: extended protocol message %q", typ)
		default:
			s.out = wire.AppendError(s.out, wire.SeverityError, wire.CodeProtocolViolation,
				fmt.Sprintf("unsupported packet type for admin console: %d", typ))
			s.flush()
			return fmt.Errorf("console: unsupported message %q", typ)
		}
	}
}

// session is one console connection.
type session struct {
	conn  net.Conn
	login Login
	b     Backend
	now   func() time.Time
	out   []byte // the answer being built
}

func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	_, err := s.conn.Write(s.out)
	return err
}

// welcome appends what follows AuthenticationOk. server_version is
// "<version>/pgvalve" as PgBouncer's console sends "<version>/bouncer".
func (s *session) welcome(dst []byte) []byte {
	for _, p := range [][2]string{
		{"server_version", s.b.Version() + "/pgvalve"},
		{"client_encoding", "UTF8"},
		{"server_encoding", "UTF8"},
		{"DateStyle", "ISO"},
		{"TimeZone", "GMT"},
		{"standard_conforming_strings", "on"},
		{"is_superuser", "on"},
		{"integer_datetimes", "on"},
	} {
		dst = wire.Append(dst, &pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	// Cancel requests for the console are meaningless; the key only has
	// to be well formed.
	key := make([]byte, 4)
	for i := range key {
		key[i] = byte(rand.Uint32())
	}
	dst = wire.Append(dst, &pgproto3.BackendKeyData{ProcessID: rand.Uint32() >> 1, SecretKey: key})
	return wire.Append(dst, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

func cstring(b []byte) (string, bool) {
	i := strings.IndexByte(string(b), 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}
