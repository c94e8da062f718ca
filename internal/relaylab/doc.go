// Package relaylab is a measurement lab for issue 14 (the relay's CPU per
// transaction), not part of pgvalve: nothing imports it. It relays bytes
// 1:1 between each accepted client and its own PostgreSQL connection,
// opened at accept, with no pooling and no protocol parsing, so that relay
// designs can be compared on the same workload and nothing else differs:
//
//   - Goroutines: two goroutines per pair, each reading one socket and
//     writing the other through wire.Socket, as pgvalve's relay does.
//   - EventLoop: a few loops, each a goroutine locked to its OS thread that
//     waits in epoll_wait on its own epoll instance and moves bytes
//     between whichever sockets are ready, as PgBouncer and Odyssey do.
//   - Pooled: the least a transaction pooler of goroutines can do, as a
//     floor for pgvalve's own cost: it answers logins itself (no
//     authentication), leases one of Options.PoolSize servers per batch
//     of whole requests, and reads the answers on the client's goroutine
//     until each request has its ReadyForQuery.
//
// Except through Pooled, startup and authentication pass through
// untouched, so clients log in to PostgreSQL itself. The package is
// Linux-only (epoll); elsewhere it is empty.
//
// BenchmarkRelayDesigns starts a throwaway cluster, runs the relay in the
// test process and an external pgbench against it, and reports the test
// process's CPU, context switches and read/write system calls per
// transaction (pgbench and PostgreSQL run in other processes, so they are
// not counted), beside a direct pgbench run for the throughput ratio and
// PgBouncer (from /proc, when it is installed) as a reference:
//
//	go test ./internal/relaylab -run '^$' -bench RelayDesigns -benchtime 1x \
//	    -relaylab.T 5 -relaylab.clients 50 -relaylab.rounds 2
//
// -relaylab.protocol picks pgbench's -M (simple, extended, prepared) and
// -relaylab.scale its -i -s. -relaylab.pgvalve names a pgvalve binary
// (go build -o /tmp/pgvalve ./cmd/pgvalve) to run in session and
// transaction mode beside the designs, measured from /proc as PgBouncer is. Rounds interleave the designs, so that a
// neighbour's load on a shared machine falls on all of them alike.
package relaylab
