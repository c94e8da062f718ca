package app_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// header builds a message header: a type byte and a length field.
func header(typ byte, length uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, length)
}

func TestAProtocolViolationEndsOnlyThatClientWith08P01(t *testing.T) {
	const maxMessage = 4096
	cfg := sessionConfig(2)
	cfg.MaxMessageSize = maxMessage
	s, url := startValve(t, cfg)
	bystander := testutil.Connect(t, url)
	if _, err := bystander.Exec(testutil.Context(t), "select 1"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		send []byte
	}{
		{"a length field below 4", header('Q', 3)},
		{"a length field of 0", header('P', 0)},
		{"a declared length far over max_message_size", header('Q', 1<<20)},
		// Whole, so nothing is left unread when pgvalve closes.
		{"a message one byte over max_message_size", append(header('Q', maxMessage), make([]byte, maxMessage-4)...)},
		{"an unknown message type 'Y'", header('Y', 4)},
		{"a backend-only message type 'Z'", append(header('Z', 5), 'I')},
	}
	for _, tc := range cases {
		for _, afterQuery := range []bool{false, true} {
			name := tc.name + "/as the first message"
			if afterQuery {
				name = tc.name + "/after a query"
			}
			t.Run(name, func(t *testing.T) {
				c := dialRaw(t, s)
				c.login()
				if afterQuery {
					if got := c.simpleQuery("select 41 + 1"); !slices.Equal(got, []string{"42"}) {
						t.Fatalf("select 41 + 1 = %q", got)
					}
				}
				c.write(tc.send)
				e := c.expectFatalThenEOF("08P01")
				if !strings.Contains(e.Message, "protocol violation") {
					t.Errorf("message %q does not say protocol violation", e.Message)
				}
				var n int
				if err := bystander.QueryRow(testutil.Context(t), "select $1::int * 2", 21).Scan(&n); err != nil || n != 42 {
					t.Fatalf("the other client broke: %d %v", n, err)
				}
				// Only the bystander's server stays leased.
				waitLeased(t, s, 1)
			})
		}
	}
	bystander.Close(testutil.Context(t))
	s.WaitIdle(t, 10*time.Second)
}

// waitLeased waits until the pools lease exactly n servers and open, close
// or queue for none.
func waitLeased(t *testing.T, s *valvetest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats := s.App.Stats()
		leased, busy := 0, false
		for _, st := range stats {
			busy = busy || st.ClientsWaiting != 0 || st.ServersConnecting != 0 || st.ServersClosing != 0
			leased += st.ServersActive
		}
		if !busy && leased == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d leased servers and nothing in flight; stats %+v", n, stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAMessageOfExactlyMaxMessageSizeIsAccepted(t *testing.T) {
	const maxMessage = 4096
	cfg := sessionConfig(1)
	cfg.MaxMessageSize = maxMessage
	s, _ := startValve(t, cfg)
	c := dialRaw(t, s)
	c.login()
	// 'Q' + length + SQL + NUL = 4096 bytes on the wire.
	payload := strings.Repeat("x", maxMessage-1-4-1-len("select ''"))
	sql := "select '" + payload + "'"
	if got := c.simpleQuery(sql); len(got) != 1 || got[0] != payload {
		t.Fatalf("query of exactly %d bytes returned %d rows", maxMessage, len(got))
	}
	c.send(&pgproto3.Terminate{})
	s.WaitIdle(t, 10*time.Second)
}

func TestEncryptionRequestsAreDeclinedAndTheClientLogsInInPlaintext(t *testing.T) {
	s, _ := startValve(t, sessionConfig(1))
	cases := []struct {
		name     string
		requests []pgproto3.FrontendMessage
	}{
		{"SSLRequest", []pgproto3.FrontendMessage{&pgproto3.SSLRequest{}}},
		{"GSSENCRequest", []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}}},
		// libpq with gssencmode=prefer and sslmode=prefer asks for both.
		{"GSSENCRequest then SSLRequest", []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			for _, req := range tc.requests {
				c.send(req)
				var answer [1]byte
				if _, err := c.nc.Read(answer[:]); err != nil {
					t.Fatalf("reading the answer to %T: %v", req, err)
				}
				if answer[0] != 'N' {
					t.Fatalf("answer to %T = %q, want 'N'", req, answer[0])
				}
			}
			c.login()
			if got := c.simpleQuery("select current_user"); !slices.Equal(got, []string{cluster.User}) {
				t.Fatalf("current_user = %q", got)
			}
			c.send(&pgproto3.Terminate{})
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

func TestNewerProtocolRequestsAreNegotiatedDownAndTheLoginSucceeds(t *testing.T) {
	s, _ := startValve(t, sessionConfig(1))
	cases := []struct {
		name      string
		version   uint32
		extra     map[string]string
		wantUnrec []string
	}{
		{"protocol 3.2", pgproto3.ProtocolVersion32, nil, nil},
		{"protocol 3.0 with a _pq_ option", pgproto3.ProtocolVersion30,
			map[string]string{"_pq_.something": "on"}, []string{"_pq_.something"}},
		{"protocol 3.2 with a _pq_ option", pgproto3.ProtocolVersion32,
			map[string]string{"_pq_.something": "on"}, []string{"_pq_.something"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			params := testUserParams()
			for k, v := range tc.extra {
				params[k] = v
			}
			c.startup(tc.version, params)
			msg := c.receive()
			npv, ok := msg.(*pgproto3.NegotiateProtocolVersion)
			if !ok {
				t.Fatalf("first reply is %T, want NegotiateProtocolVersion", msg)
			}
			if npv.NewestMinorProtocol != 0 {
				t.Errorf("NewestMinorProtocol = %d, want 0", npv.NewestMinorProtocol)
			}
			if len(npv.UnrecognizedOptions)+len(tc.wantUnrec) > 0 && !slices.Equal(npv.UnrecognizedOptions, tc.wantUnrec) {
				t.Errorf("UnrecognizedOptions = %q, want %q", npv.UnrecognizedOptions, tc.wantUnrec)
			}
			c.untilReady()
			if got := c.simpleQuery("select current_database()"); !slices.Equal(got, []string{pgtest.TestDatabase}) {
				t.Fatalf("current_database = %q", got)
			}
			c.send(&pgproto3.Terminate{})
			s.WaitIdle(t, 10*time.Second)
		})
	}
}

func TestUnacceptableStartupPacketsGetAFatalError(t *testing.T) {
	s, _ := startValve(t, sessionConfig(1))
	cases := []struct {
		name    string
		version uint32
		params  map[string]string
		code    string
	}{
		{"no user", pgproto3.ProtocolVersion30, map[string]string{"database": pgtest.TestDatabase}, "28000"},
		{"an empty user", pgproto3.ProtocolVersion30, map[string]string{"user": "", "database": pgtest.TestDatabase}, "28000"},
		{"protocol 2.0", 2 << 16, testUserParams(), "0A000"},
		{"protocol 4.0", 4 << 16, testUserParams(), "0A000"},
		{"a replication connection", pgproto3.ProtocolVersion30,
			map[string]string{"user": cluster.User, "database": pgtest.TestDatabase, "replication": "database"}, "0A000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s)
			c.startup(tc.version, tc.params)
			c.expectFatalThenEOF(tc.code)
		})
	}
	t.Run("an invalid startup packet length", func(t *testing.T) {
		c := dialRaw(t, s)
		c.write(binary.BigEndian.AppendUint32(nil, 4))
		c.expectFatalThenEOF("08P01")
	})
	s.WaitIdle(t, 10*time.Second)
}

// A real client sends an oversized message whole. pgvalve stops reading at
// the header, so unless it drains (or half-closes and lingers) before
// closing, the kernel answers the unread bytes with a RST and the client
// never sees the 08P01.
func TestAClientSendingAWholeOversizedQueryIsToldWhy(t *testing.T) {
	cfg := sessionConfig(2)
	cfg.MaxMessageSize = 4096
	s, url := startValve(t, cfg)
	bystander := testutil.Connect(t, url)
	for _, size := range []int{8 << 10, 4 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			ctx := testutil.Context(t)
			conn := testutil.Connect(t, url+"&default_query_exec_mode=simple_protocol")
			_, err := conn.Exec(ctx, "select '"+strings.Repeat("x", size)+"'")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "08P01" {
				t.Fatalf("a client whose oversized message is left unread got %v, not FATAL 08P01", err)
			}
			if err := bystander.Ping(ctx); err != nil {
				t.Fatalf("the other client broke: %v", err)
			}
		})
	}
	bystander.Close(testutil.Context(t))
	s.WaitIdle(t, 10*time.Second)
}

func TestAProtocolViolationDuringAQueryCancelsItAndClosesTheServer(t *testing.T) {
	s, _ := startValve(t, sessionConfig(2))
	ctx := testutil.Context(t)
	admin := direct(t)
	const sleepy = "select pg_sleep(30)"
	c := dialRaw(t, s)
	c.login()
	c.send(&pgproto3.Query{String: sleepy})
	testutil.Eventually(t, "the query to run", func() bool { return activeQueries(ctx, admin, sleepy) == 1 })
	c.write(header('Y', 4))
	c.expectFatalThenEOF("08P01")
	testutil.Eventually(t, "the abandoned query to stop", func() bool { return activeQueries(ctx, admin, sleepy) == 0 })
	s.WaitIdle(t, 10*time.Second)
	// The server's state was unknown, so it was closed rather than pooled.
	if st, _ := s.PoolStats(poolName()); st.Total() != 0 {
		t.Fatalf("pool still holds servers: %+v", st)
	}
}
