package app_test

import (
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// The hot path under load (issue 14): 50 clients through a pool of 20 in
// transaction pooling, each sending testutil.LoadQuery as raw bytes, b.N
// transactions in all. user-ns/op and sys-ns/op are this process's CPU
// per transaction: pgvalve's, plus the clients' reads and writes. Unlike a single client, 50 keep the runtime from idling between
// transactions, so the figure follows what pgvalve does per transaction.
// internal/relaylab's BenchmarkPooledUnderLoad runs the same load through
// the least goroutine pooler, the floor to compare with. Run with
//
//	go test -run '^$' -bench TransactionsUnderLoad -benchtime 60000x ./internal/app
func BenchmarkTransactionsUnderLoad(b *testing.B) {
	s := valvetest.Start(b, txnConfig(20))
	txn := encode(b, &pgproto3.Query{String: testutil.LoadQuery})
	conns := make([]net.Conn, 50)
	for i := range conns {
		c, err := loggedIn(s.Addr.String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	testutil.BenchUnderLoad(b, conns, txn)
}
