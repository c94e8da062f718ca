package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// query answers one simple query into s.out. shutdown is true after
// SHUTDOWN (immediate), which answers nothing. Errors of the command are
// answered as ERROR and ReadyForQuery; query itself never fails.
func (s *session) query(ctx context.Context, q string) (shutdown bool) {
	c, err := parseCommand(q)
	if len(q) > maxQuery {
		err = errSyntax
	}
	switch {
	case errors.Is(err, errBadArgs):
		s.fail(wire.CodeProtocolViolation, "bad arguments")
		return false
	case err != nil:
		s.invalid(q)
		return false
	case c.Verb == "":
		s.out = wire.Append(s.out, &pgproto3.EmptyQueryResponse{})
		s.ready()
		return false
	}
	switch c.Verb {
	case "show", "select": // PgBouncer takes SELECT as SHOW
		s.show(c, q)
	case "set":
		s.set(c)
	case "pause", "resume", "reconnect", "kill", "kill_client", "wait_close", "reload", "shutdown", "suspend", "disable", "enable":
		if s.login.Role != RoleAdmin {
			s.fail(CodeInsufficientPrivilege, "admin access needed")
			return false
		}
		return s.admin(ctx, c, q)
	default:
		s.invalid(q)
	}
	return false
}

// admin runs an admin command.
func (s *session) admin(ctx context.Context, c command, q string) (shutdown bool) {
	if c.Arg != "" && IsConsole(c.Arg) {
		switch c.Verb {
		case "pause", "reconnect", "kill", "wait_close":
			s.fail(wire.CodeProtocolViolation, fmt.Sprintf("cannot %s admin db: %s", strings.ReplaceAll(c.Verb, "_", " "), c.Arg))
			return false
		}
	}
	var err error
	tag := strings.ToUpper(c.Verb)
	switch c.Verb {
	case "pause":
		err = s.b.Pause(ctx, c.Arg)
	case "resume":
		err = s.b.Resume(c.Arg)
	case "reconnect":
		err = s.b.Reconnect(c.Arg)
	case "kill":
		err = s.b.Kill(c.Arg)
	case "kill_client":
		id, perr := strconv.ParseUint(c.Arg, 10, 64)
		if perr != nil {
			s.fail(wire.CodeProtocolViolation, "invalid client pointer supplied")
			return false
		}
		err = s.b.KillClient(id)
	case "wait_close":
		err = s.b.WaitClose(ctx, c.Arg)
	case "reload":
		if c.Arg != "" {
			s.invalid(q)
			return false
		}
		if err := s.b.Reload(); err != nil {
			s.fail(wire.CodeConfigFileError, "RELOAD failed: "+err.Error())
			return false
		}
	case "shutdown":
		mode := ShutdownNow
		switch asciiLower(c.Arg) {
		case "":
		case "wait_for_servers":
			mode = ShutdownWaitForServers
		case "wait_for_clients":
			mode = ShutdownWaitForClients
		default:
			s.invalid(q)
			return false
		}
		if err := s.b.Shutdown(mode); err != nil {
			s.failErr(err)
			return false
		}
		if mode == ShutdownNow {
			return true
		}
	default: // suspend, disable, enable
		s.fail(wire.CodeFeatureNotSupported, fmt.Sprintf("%s is not supported by pgvalve", tag))
		return false
	}
	if err != nil {
		s.failErr(err)
		return false
	}
	s.complete(tag)
	return false
}

// fakeParams are the settings PgBouncer's console pretends to have, for
// drivers that SHOW or SET them whatever the server.
var fakeParams = []struct{ name, value string }{
	{"client_encoding", "UTF-8"},
	{"default_transaction_isolation", "read committed"},
	{"standard_conforming_strings", "on"},
	{"datestyle", "ISO"},
	{"timezone", "GMT"},
}

func fakeParam(name string) (string, bool) {
	for _, p := range fakeParams {
		if strings.EqualFold(p.name, name) {
			return p.value, true
		}
	}
	return "", false
}

// set answers SET: the fake parameters are ignored with a notice, as in
// PgBouncer; pgvalve's settings change by editing the file and RELOAD.
func (s *session) set(c command) {
	if _, ok := fakeParam(c.Arg); ok {
		s.out = wire.AppendNotice(s.out, codeNotice, "SET ignored")
		s.complete("SET")
		return
	}
	if s.login.Role != RoleAdmin {
		s.fail(CodeInsufficientPrivilege, "admin access needed")
		return
	}
	s.fail(wire.CodeFeatureNotSupported, "SET is not supported by pgvalve: change the configuration file and RELOAD")
}

// invalid answers a query the console does not understand, in PgBouncer's
// words.
func (s *session) invalid(q string) {
	s.fail(wire.CodeProtocolViolation, fmt.Sprintf("invalid command '%s', use SHOW HELP;", q))
}

// fail answers ERROR code msg and ReadyForQuery.
func (s *session) fail(code, msg string) {
	s.out = wire.AppendError(s.out, wire.SeverityError, code, msg)
	s.ready()
}

// failErr answers a Backend's error: its SQLSTATE when it has one,
// PgBouncer's 08P01 for every console error otherwise.
func (s *session) failErr(err error) {
	code := wire.CodeProtocolViolation
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		code = coded.SQLState()
	}
	s.fail(code, err.Error())
}

// complete answers CommandComplete tag and ReadyForQuery.
func (s *session) complete(tag string) {
	s.out = wire.Append(s.out, &pgproto3.CommandComplete{CommandTag: []byte(tag)})
	s.ready()
}

func (s *session) ready() {
	s.out = wire.Append(s.out, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}
