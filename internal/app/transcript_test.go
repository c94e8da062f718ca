package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// wireConn is a logged-in connection spoken to message by message, for
// conversations no driver would hold. pgconn logs in, then hands over the
// socket.
type wireConn struct {
	t  *testing.T
	nc net.Conn
	fe *pgproto3.Frontend
}

func dialWire(t *testing.T, url string) *wireConn {
	t.Helper()
	pc, err := pgconn.Connect(testutil.Context(t), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	hc, err := testutil.Hijack(testutil.Context(t), pc)
	if err != nil {
		t.Fatalf("hijack: %v", err)
	}
	t.Cleanup(func() { _ = hc.Conn.Close() })
	_ = hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(hc.Conn, hc.Conn)
	fe.SetMaxBodyLen(64 << 20)
	return &wireConn{t: t, nc: hc.Conn, fe: fe}
}

// send writes the messages as one batch.
func (c *wireConn) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	var buf []byte
	for _, m := range msgs {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			c.t.Fatalf("encode %T: %v", m, err)
		}
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// until reads messages up to and including the n-th ReadyForQuery, or up
// to a CopyInResponse when stopAtCopy, and returns them as a transcript:
// one word per message, with the SQLSTATE and message of errors and the
// tag of commands, which is what a client branches on.
func (c *wireConn) until(n int, stopAtCopy bool) string {
	c.t.Helper()
	var words []string
	for n > 0 {
		m, err := c.fe.Receive()
		if err != nil {
			c.t.Fatalf("receive after %q: %v", strings.Join(words, " "), err)
		}
		words = append(words, word(m))
		switch m.(type) {
		case *pgproto3.ReadyForQuery:
			n--
		case *pgproto3.CopyInResponse:
			if stopAtCopy {
				return strings.Join(words, " ")
			}
		}
	}
	return strings.Join(words, " ")
}

func word(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		return "E" + m.Code + "(" + m.Message + ")"
	case *pgproto3.CommandComplete:
		return "C(" + string(m.CommandTag) + ")"
	case *pgproto3.ReadyForQuery:
		return "Z" + string(m.TxStatus)
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "D(" + strings.Join(vals, ",") + ")"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
}

// exchange is one batch a conversation sends and what it reads back.
type exchange struct {
	send       []pgproto3.FrontendMessage
	ready      int  // ReadyForQuery answers to read
	stopAtCopy bool // read up to a CopyInResponse instead
	// settle gives pgvalve time to act on what was sent before the next
	// batch comes, for a batch that expects no answer yet.
	settle time.Duration
}

// converse holds the conversation on conn and returns its transcript.
func converse(conn *wireConn, steps []exchange) string {
	var out []string
	for _, st := range steps {
		conn.send(st.send...)
		n := st.ready
		if st.stopAtCopy {
			n = 1 << 30
		}
		out = append(out, conn.until(n, st.stopAtCopy))
		time.Sleep(st.settle)
	}
	return strings.Join(out, " | ")
}

// poolModeCase is a pool mode with a max_prepared_statements.
type poolModeCase struct {
	name  string
	mode  config.PoolMode
	stmts int
}

// pooledModes are the ways pgvalve must hold a conversation exactly as a
// dedicated PostgreSQL connection does; trackedModes those that keep
// named statements across transactions.
var trackedModes = []poolModeCase{
	{"session", config.PoolSession, 200},
	{"transaction", config.PoolTransaction, 200},
	{"statement", config.PoolStatement, 200},
}

// start runs pgvalve in mode m over a pool of size servers.
func (m poolModeCase) start(t *testing.T, size int) (*valvetest.Server, string) {
	t.Helper()
	cfg := txnConfig(size)
	cfg.PoolMode, cfg.MaxPreparedStatements = m.mode, m.stmts
	return startValve(t, cfg)
}

// ownerConn is a connection straight to PostgreSQL as the test user, who
// owns what the tests create.
func ownerConn(t *testing.T) *pgx.Conn {
	t.Helper()
	return testutil.Connect(t, cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase))
}

// newTable creates table name afresh with columns, owned by the test user,
// and returns the owner's connection.
func newTable(t *testing.T, name, columns string) *pgx.Conn {
	t.Helper()
	owner := ownerConn(t)
	testutil.MustExec(t, owner, "drop table if exists "+name)
	testutil.MustExec(t, owner, "create table "+name+" ("+columns+")")
	return owner
}

// pooledModes are the ways pgvalve must hold a conversation exactly as a
// dedicated PostgreSQL connection does.
var pooledModes = []poolModeCase{
	{"session", config.PoolSession, 200},
	{"transaction", config.PoolTransaction, 200},
	{"transaction without tracking", config.PoolTransaction, 0},
	{"statement", config.PoolStatement, 200},
}

// sameAsPostgres holds the conversation on a dedicated PostgreSQL
// connection and through pgvalve in every pool mode, and fails on the
// first transcript that differs. setup runs before each, straight on
// PostgreSQL. Every server goes back once the client leaves.
func sameAsPostgres(t *testing.T, setup string, steps []exchange) {
	t.Helper()
	sameAsPostgresIn(t, pooledModes, setup, steps)
}

// sameAsPostgresIn is sameAsPostgres in the given modes only: named
// statements across batches need tracking in transaction pooling.
func sameAsPostgresIn(t *testing.T, modes []poolModeCase, setup string, steps []exchange) {
	t.Helper()
	owner := cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)
	runSetup(t, owner, setup)
	direct := dialWire(t, owner)
	want := converse(direct, steps)
	_ = direct.nc.Close()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, url := m.start(t, 2)
			runSetup(t, owner, setup)
			conn := dialWire(t, url)
			if got := converse(conn, steps); got != want {
				t.Fatalf("through pgvalve:\n  %s\nPostgreSQL itself:\n  %s", got, want)
			}
			conn.send(&pgproto3.Terminate{})
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

func runSetup(t *testing.T, url, sql string) {
	t.Helper()
	if sql == "" {
		return
	}
	c, err := pgconn.Connect(testutil.Context(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(testutil.Context(t), sql).ReadAll(); err != nil {
		t.Fatalf("setup: %v", err)
	}
}
