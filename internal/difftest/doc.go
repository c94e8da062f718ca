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
//   - The sender's process ID in a NotificationResponse: the two runs'
//     senders are different backends, and through pgvalve a notification
//     names the pool server that ran the NOTIFY, not the pid of the
//     client's BackendKeyData (so a client cannot tell its own
//     notifications by pid).
//   - Where a NotificationResponse comes, in a step that expects some
//     (Step.Notifies): in transaction pooling a LISTEN is served by the
//     pool's shared listening connection, so a client's notification to
//     itself comes after the ReadyForQuery that PostgreSQL sends it
//     before. Such a step's notifications are compared in their order,
//     after its other messages (Reorder).
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
//   - A server keeps the name of a custom setting (myapp.x) once any
//     client set it; RESET only empties it. Another client of that server
//     reads current_setting('myapp.x', true) as an empty string where
//     PostgreSQL says NULL: the session-state cases coalesce the two.
//   - max_pinned_servers is set to the pool size, so that no pin is
//     refused with pgvalve's own 53400 (checked in internal/app).
//   - pgvalve refuses a message larger than max_message_size with FATAL
//     08P01 where PostgreSQL (1 GiB) runs it; a named case checks exactly
//     that answer.
package difftest
