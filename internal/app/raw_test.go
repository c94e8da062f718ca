package app_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// rawConn is a client speaking the wire protocol by hand, for bytes no
// client library would send.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fe *pgproto3.Frontend
}

// dialRaw opens a TCP connection to pgvalve; every read and write on it
// must finish within 30 seconds.
func dialRaw(t *testing.T, s *valvetest.Server) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
}

// write sends raw bytes.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send encodes and sends one frontend message.
func (c *rawConn) send(msg pgproto3.FrontendMessage) {
	c.t.Helper()
	b, err := msg.Encode(nil)
	if err != nil {
		c.t.Fatalf("encode %T: %v", msg, err)
	}
	c.write(b)
}

// startup sends a StartupMessage with the given protocol version.
func (c *rawConn) startup(version uint32, params map[string]string) {
	c.t.Helper()
	c.send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params})
}

// testUserParams are startup parameters for the test user and database.
func testUserParams() map[string]string {
	return map[string]string{"user": cluster.User, "database": pgtest.TestDatabase}
}

// receive reads one backend message; it fails the test on any error.
func (c *rawConn) receive() pgproto3.BackendMessage {
	c.t.Helper()
	msg, err := c.fe.Receive()
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return msg
}

// untilReady reads the rest of a login (after any NegotiateProtocolVersion
// the caller checked) up to ReadyForQuery, failing on an ErrorResponse.
func (c *rawConn) untilReady() {
	c.t.Helper()
	sawAuthOK, sawKey := false, false
	for {
		switch m := c.receive().(type) {
		case *pgproto3.AuthenticationOk:
			sawAuthOK = true
		case *pgproto3.BackendKeyData:
			sawKey = true
		case *pgproto3.ParameterStatus:
		case *pgproto3.ReadyForQuery:
			if !sawAuthOK || !sawKey {
				c.t.Fatalf("ReadyForQuery without AuthenticationOk (%v) or BackendKeyData (%v)", sawAuthOK, sawKey)
			}
			if m.TxStatus != 'I' {
				c.t.Fatalf("ReadyForQuery status %q, want 'I'", m.TxStatus)
			}
			return
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("login failed: %s %s", m.Code, m.Message)
		default:
			c.t.Fatalf("unexpected %T during login", m)
		}
	}
}

// login performs a protocol 3.0 trust login as the test user.
func (c *rawConn) login() {
	c.t.Helper()
	c.startup(pgproto3.ProtocolVersion30, testUserParams())
	c.untilReady()
}

// simpleQuery runs a simple query and returns the first column of each row.
func (c *rawConn) simpleQuery(sql string) []string {
	c.t.Helper()
	c.send(&pgproto3.Query{String: sql})
	var rows []string
	for {
		switch m := c.receive().(type) {
		case *pgproto3.DataRow:
			rows = append(rows, string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("query %q: %s %s", sql, m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return rows
		}
	}
}

// expectFatalThenEOF asserts the next message is a FATAL ErrorResponse with
// code and that the connection is then closed with nothing more sent.
func (c *rawConn) expectFatalThenEOF(code string) *pgproto3.ErrorResponse {
	c.t.Helper()
	msg := c.receive()
	e, ok := msg.(*pgproto3.ErrorResponse)
	if !ok {
		c.t.Fatalf("got %T, want ErrorResponse %s", msg, code)
	}
	if e.Code != code || e.Severity != "FATAL" {
		c.t.Fatalf("got %s %s %q, want FATAL %s", e.Severity, e.Code, e.Message, code)
	}
	got := *e
	if next, err := c.fe.Receive(); err == nil {
		c.t.Fatalf("after the FATAL error got %T, want the connection closed", next)
	} else if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		c.t.Fatalf("after the FATAL error: %v, want EOF", err)
	}
	return &got
}
