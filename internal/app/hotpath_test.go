package app_test

import (
	"bufio"
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// The whole hot path in one process (issue 14): one client, transaction
// pooling, pgbench's select-only transaction per iteration, sent as raw
// bytes and read to ReadyForQuery. allocs/op counts the client too, so
// the client allocates nothing per iteration; ns/op is only worth
// comparing within one run on a shared machine. Run with
//
//	go test -run '^$' -bench Transaction -benchmem ./internal/app -cpuprofile cpu.out
func BenchmarkTransaction(b *testing.B) {
	hotAccounts(b)
	s := valvetest.Start(b, txnConfig(2))
	simple := encode(b, &pgproto3.Query{String: query + "7"})
	bind := func(stmt string) []byte {
		return encode(b, &pgproto3.Bind{PreparedStatement: stmt, Parameters: [][]byte{[]byte("7")}})
	}
	extended := encode(b, &pgproto3.Parse{Query: query + "$1"})
	extended = append(extended, bind("")...)
	extended = append(extended, encode(b, &pgproto3.Describe{ObjectType: 'P'})...)
	extended = append(extended, encode(b, &pgproto3.Execute{})...)
	extended = append(extended, encode(b, &pgproto3.Sync{})...)
	prepared := bind("hot")
	prepared = append(prepared, encode(b, &pgproto3.Execute{})...)
	prepared = append(prepared, encode(b, &pgproto3.Sync{})...)
	prepare := encode(b, &pgproto3.Parse{Name: "hot", Query: query + "$1"})
	prepare = append(prepare, encode(b, &pgproto3.Sync{})...)

	for _, c := range []struct {
		name       string
		setup, txn []byte
	}{
		{"simple", nil, simple},
		{"extended", nil, extended},
		{"prepared", prepare, prepared},
	} {
		b.Run(c.name, func(b *testing.B) {
			conn, err := loggedIn(s.Addr.String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReaderSize(conn, 8192)
			if c.setup != nil {
				roundTrip(b, conn, r, c.setup)
			}
			roundTrip(b, conn, r, c.txn) // warm: the server is linked and planned
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				roundTrip(b, conn, r, c.txn)
			}
		})
	}
}

// query is pgbench's select-only statement, on hotAccounts' table.
const query = "SELECT abalance FROM hot_accounts WHERE aid = "

// hotAccounts makes the table query reads, as pgbench -i would, small.
func hotAccounts(b *testing.B) {
	admin := testutil.Connect(b, cluster.SuperuserURL(pgtest.TestDatabase))
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE TABLE IF NOT EXISTS hot_accounts (aid int PRIMARY KEY, abalance int NOT NULL)",
		"INSERT INTO hot_accounts SELECT g, 0 FROM generate_series(1, 100) g ON CONFLICT DO NOTHING",
		"GRANT SELECT ON hot_accounts TO " + cluster.User,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
}

// encode is msg's wire bytes.
func encode(b *testing.B, msg pgproto3.FrontendMessage) []byte {
	out, err := msg.Encode(nil)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// roundTrip sends req and reads the replies up to ReadyForQuery, failing
// on an ErrorResponse; it allocates nothing.
func roundTrip(b *testing.B, conn net.Conn, r *bufio.Reader, req []byte) {
	if err := testutil.RoundTrip(conn, r, req); err != nil {
		b.Fatal(err)
	}
}
