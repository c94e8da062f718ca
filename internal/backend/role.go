package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Role is what a server is to target_session_attrs: a standby (in
// recovery) or a primary, and whether its sessions are read-only.
type Role struct {
	Standby  bool
	ReadOnly bool // default_transaction_read_only is on, or a standby
}

// Fits reports whether a server of this role may serve a route's
// target_session_attrs, as libpq decides. prefer-standby takes either: the
// choice of host prefers standbys.
func (r Role) Fits(attrs string) bool {
	switch attrs {
	case "read-write":
		return !r.ReadOnly
	case "read-only":
		return r.ReadOnly
	case "primary":
		return !r.Standby
	case "standby":
		return r.Standby
	}
	return true
}

func (r Role) String() string {
	switch {
	case r.Standby:
		return "standby"
	case r.ReadOnly:
		return "read-only primary"
	}
	return "primary"
}

// RoleError says a server was not what its route's target_session_attrs
// asks for; the pool tries the route's other hosts.
type RoleError struct {
	Addr  string // host:port
	Role  Role
	Attrs string
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("server at %s is a %s, which target_session_attrs=%s does not take", e.Addr, e.Role, e.Attrs)
}

// roleQuery learns the role from servers older than PostgreSQL 14, which
// report neither in_hot_standby nor default_transaction_read_only.
const roleQuery = "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')"

// learnRole reads the server's role from what it reported at login, or
// asks it.
func learnRole(ctx context.Context, pg *pgconn.PgConn) (Role, error) {
	hs, ro := pg.ParameterStatus("in_hot_standby"), pg.ParameterStatus("default_transaction_read_only")
	if hs != "" && ro != "" {
		return Role{Standby: hs == "on", ReadOnly: hs == "on" || ro == "on"}, nil
	}
	rr := pg.ExecParams(ctx, roleQuery, nil, nil, nil, nil).Read()
	if rr.Err != nil {
		return Role{}, fmt.Errorf("backend: learning the server's role: %w", rr.Err)
	}
	if len(rr.Rows) != 1 || len(rr.Rows[0]) != 2 {
		return Role{}, errors.New("backend: learning the server's role: unexpected answer")
	}
	standby := string(rr.Rows[0][0]) == "t"
	return Role{Standby: standby, ReadOnly: standby || string(rr.Rows[0][1]) == "on"}, nil
}

// Role is the server's role, as learnt at login when Config.LearnRole
// asked; the zero Role (a writable primary) otherwise.
func (c *Conn) Role() Role { return c.role }
