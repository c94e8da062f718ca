// Package difftest checks pgvalve against PostgreSQL itself: every answer a
// client gets through pgvalve must equal, message for message and byte for
// byte, what PostgreSQL sends the same client connected directly.
//
// Generate makes conversations from a seed (or from fuzz input): several
// clients, each step one client's batch of raw frontend messages, drawn
// from simple and extended queries, pipelines with errors, transactions,
// COPY both ways, notices, settings, function calls, deallocation, and
// messages from 0 bytes to several MiB placed around the buffer boundaries
// of PostgreSQL (8 KiB) and pgvalve (16 KiB). Each batch is written in
// pieces cut at random bytes, so a reader on the other side sees partial
// messages anywhere. A Replayer replays a conversation in lockstep against
// PostgreSQL directly and through pgvalve, each pooled client against its
// own direct connection (two databases with the same tables keep the runs
// apart), and reports the first difference.
//
// # What the comparison normalises
//
// Only what a pooler legitimately changes (see Normalize):
//
//   - The login exchange is pgvalve's own (authentication, BackendKeyData,
//     the order of the ParameterStatus messages); only the reported
//     parameter values are compared, as a set.
//   - RowDescription table OIDs: the two databases' tables differ.
//   - The File, Line and Routine fields of errors and notices: the answers
//     pgvalve makes itself carry no PostgreSQL source location.
//
// The generator keeps clear of what no comparison could make equal: pids,
// OIDs, now(), random(), and row orders PostgreSQL does not promise.
//
// # Documented differences: what the generator does not send
//
// Each is a design decision of pgvalve or a limit of any transaction pooler,
// written down here so that the comparison can stay strict everywhere else:
//
//   - A batch of only named Parse and Sync (libpq's PQprepare) from a client
//     holding no server is answered by pgvalve without one, and an error in
//     the query surfaces at first use. Such batches carry only SQL that is
//     valid whatever the tables hold.
//   - Statement pooling refuses transaction blocks: no BEGIN there.
//   - Without statement tracking (max_prepared_statements = 0), transaction
//     and statement pooling leave a named statement on the server that ran
//     its Parse: no named statements there.
//   - Where a client may change servers between batches, the unnamed
//     statement and settings PostgreSQL does not report (search_path,
//     work_mem) do not outlive the batch that made them. SQL-level PREPARE
//     follows the client with statement tracking, as named Parse does
//     (internal/app's TestSQLPrepareGetsPostgresAnswers); the generator
//     does not send it yet.
//   - pgvalve refuses a message larger than max_message_size with FATAL
//     08P01 where PostgreSQL (1 GiB) runs it; a named case checks exactly
//     that answer.
package difftest
