package app_test

import (
	"encoding/binary"
	"io"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// poolView returns the one pool's view, as the console and /metrics see it.
func poolView(t *testing.T, s *valvetest.Server) observe.Pool {
	t.Helper()
	pools := s.App.Source().Pools()
	if len(pools) != 1 {
		t.Fatalf("%d pools, want 1: %+v", len(pools), pools)
	}
	return pools[0]
}

// roundTrip sends raw client bytes and reads the answer up to its
// ReadyForQuery by hand, returning how many bytes the client read.
func (c *rawConn) roundTrip(msg []byte) int {
	c.t.Helper()
	c.write(msg)
	read := 0
	for {
		var head [5]byte
		if _, err := io.ReadFull(c.nc, head[:]); err != nil {
			c.t.Fatalf("read: %v", err)
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		if _, err := io.ReadFull(c.nc, body); err != nil {
			c.t.Fatalf("read: %v", err)
		}
		read += len(head) + len(body)
		if head[0] == 'Z' {
			return read
		}
	}
}

// The bytes a pool counts are the bytes on the wire: what its clients
// sent after logging in, and what they read back, to the byte.
func TestAPoolCountsEveryByteItsClientsSendAndRead(t *testing.T) {
	s, _ := startValve(t, txnConfig(2))
	c := dialRaw(t, s)
	c.login()
	before := poolView(t, s)
	sent, read := 0, 0
	for _, sql := range []string{"select 1", "select repeat('x', 70000)", "begin", "select now()", "commit"} {
		msg, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		sent += len(msg)
		read += c.roundTrip(msg)
	}
	after := poolView(t, s)
	if got := after.BytesReceived - before.BytesReceived; got != int64(sent) {
		t.Errorf("bytes received from the client: %d, want the %d it sent", got, sent)
	}
	if got := after.BytesSent - before.BytesSent; got != int64(read) {
		t.Errorf("bytes sent to the client: %d, want the %d it read", got, read)
	}
	if after.ReceivedLastMinute < int64(sent) || after.SentLastMinute < int64(read) {
		t.Errorf("last minute: %d received, %d sent; want at least %d and %d", after.ReceivedLastMinute, after.SentLastMinute, sent, read)
	}
}

// clientByApp finds the live client with the given application_name in
// a list of clients (one moment's, so that their shares add up).
func clientByApp(t *testing.T, clients []observe.Client, app string) observe.Client {
	t.Helper()
	for _, c := range clients {
		if c.ApplicationName == app {
			return c
		}
	}
	t.Fatalf("no client with application_name %q", app)
	return observe.Client{}
}

// A holder shows the head of its last query, cut before 100 bytes at a
// character boundary, and each holder's share of the pool's server time:
// while no hold has ended, the holders' shares add up to one.
func TestHoldersShowTheirQueryHeadAndTheirShareOfServerTime(t *testing.T) {
	s, url := startValve(t, txnConfig(3))
	ctx := testutil.Context(t)
	// 97 ASCII bytes and then a two-byte character over the 100th byte.
	long := "select '" + strings.Repeat("a", 89) + strings.Repeat("é", 20) + "'"
	for _, app := range []string{"first", "second"} {
		c := connectTx(t, url+"&application_name="+app)
		testutil.MustExec(t, c, "begin")
		if _, err := c.Exec(ctx, long); err != nil {
			t.Fatal(err)
		}
	}
	clients := s.App.Source().Clients()
	first := clientByApp(t, clients, "first")
	if !strings.HasPrefix(long, first.Query) || !utf8.ValidString(first.Query) || len(first.Query) != 99 {
		t.Errorf("query head %q (%d bytes), want the first 99 bytes: the whole characters of the first 100", first.Query, len(first.Query))
	}
	if first.HoldState != session.HoldIdleInTx.String() {
		t.Errorf("hold state %q, want idle in transaction", first.HoldState)
	}
	second := clientByApp(t, clients, "second")
	if sum := first.ServerShare + second.ServerShare; math.Abs(sum-1) > 1e-9 || first.ServerShare <= 0 || second.ServerShare <= 0 {
		t.Errorf("shares %v and %v, want two positive shares adding up to 1", first.ServerShare, second.ServerShare)
	}
}

// With log_query_text off nobody is shown a query's text.
func TestQueryTextOffShowsNoQuery(t *testing.T) {
	cfg := txnConfig(1)
	cfg.LogQueryText = false
	s, url := startValve(t, cfg)
	c := connectTx(t, url+"&application_name=quiet")
	testutil.MustExec(t, c, "begin")
	testutil.MustExec(t, c, "select 'secret'")
	if q := clientByApp(t, s.App.Source().Clients(), "quiet").Query; q != "" {
		t.Errorf("query shown %q with log_query_text off", q)
	}
}
