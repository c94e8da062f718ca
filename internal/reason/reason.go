// Package reason names every way a client session or a server connection
// ends, and every answer pgvalve makes up for a request, in one table: the
// SQLSTATE and message a client gets, the log text, and a stable short
// snake_case name for logs and metrics (a Prometheus label such as
// reason="idle_timeout"). Names are an interface: never rename one.
//
// It is its own package, not part of session, because backend and pool
// close servers for reasons of their own and must not import session.
package reason

import (
	"fmt"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// Reason is why something ended. The zero value, None, means it did not.
type Reason uint8

// Kind says what a reason ends.
type Kind uint8

const (
	// Client: a client session ends; a client-facing code means the
	// client is told FATAL first.
	Client Kind = iota + 1
	// Request: one request is answered with an ERROR (or a NOTICE) and
	// the session goes on.
	Request
	// Server: a server connection is closed, never reused.
	Server
)

// Client sessions.
const (
	None Reason = iota
	ClientTerminated
	ClientGone
	CancelRequest
	BadStartup
	UnencryptedAfterSSL
	TLSRequired
	UnsupportedProtocol
	NoUser
	Replication
	BadStartupParam
	NoSuchDatabase
	EmptyPassword
	LoginTimeout
	AuthFailed
	AuthProtocol
	CleartextNeedsTLS
	NoClientCert
	CertUserMismatch
	TooManyClients
	Panic
	ProtocolViolation
	TxInStatementMode
	IdleTxTimeout
	ClientIdleTimeout
	ShuttingDown
	Killed
	// Why a client got no server (login check or first request), or lost
	// the one it had (session pooling).
	ServerUnreachable
	ServerRefused
	WaitTimeout
	PoolShutDown
	ConnectFailed
	ServerFailed
	ServerTLSFailed
	// Why a user's secret could not be looked up (auth_query).
	AuthQueryUnreachable
	AuthQueryFailed
	// Requests.
	RequestLost
	TxLost
	InFailedTx
	CanceledInQueue
	PinLimit
	Queued
	// Server connections: found dead or unusable by the server connection
	// itself.
	ServerWriteFailed
	ServerReadFailed
	ServerUnexpectedCopy
	ServerPeekFailed
	ServerClosed
	ServerSpokeWhileIdle
	// ... by the relay.
	ServerCheckFailed
	ServerLost
	RelayFailed
	ClientLeftMidRequest
	PinnedStateLeft
	RollbackFailed
	ResetQueryFailed
	QueryTimeout
	SafePointFailed
	LostTxSetupFailed
	// ... by the pool.
	NotReusable
	IdleTimeout
	Lifetime
	PoolOverSize
	SharedLimit
	PoolPaused
	Reconnect
	PoolDraining
	HostDown
	HostRebalance
	PoolClosed
	count
)

// Count is one more than the largest Reason: an array indexed by Reason
// has Count entries.
const Count = int(count)

// entry is one row of the table. msg is a fmt format when the reason takes
// arguments (Message); code "" with kind Client or Request means the code
// comes from elsewhere (the server's own error) or the client is told
// nothing.
type entry struct {
	kind Kind
	name string
	code string
	msg  string
	log  string
}

// table is the one place each reason's name, SQLSTATE, client message and
// log text are written. Client messages are byte for byte what clients got
// before the table existed, PgBouncer's text where pgvalve copies it.
var table = [count]entry{
	None: {0, "none", "", "", ""},

	ClientTerminated:    {Client, "client_terminated", "", "", "client sent Terminate"},
	ClientGone:          {Client, "client_gone", "", "", "client connection closed or failed"},
	CancelRequest:       {Client, "cancel_request", "", "", "cancel request handled"},
	BadStartup:          {Client, "bad_startup", wire.CodeProtocolViolation, "invalid startup packet layout", "invalid startup packet"},
	UnencryptedAfterSSL: {Client, "unencrypted_after_ssl", wire.CodeProtocolViolation, "received unencrypted data after SSL request", "cleartext bytes after SSLRequest"},
	TLSRequired:         {Client, "tls_required", wire.CodeInvalidAuthSpec, "no pg_hba.conf entry for host %q, user %q, database %q, no encryption", "client without TLS under client_tls_sslmode require"},
	UnsupportedProtocol: {Client, "unsupported_protocol", wire.CodeFeatureNotSupported, "unsupported frontend protocol %d.%d: server supports 3.0", "unsupported protocol"},
	NoUser:              {Client, "no_user", wire.CodeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet", "no user name"},
	Replication:         {Client, "replication", wire.CodeFeatureNotSupported, "replication connections are not supported by pgvalve", "replication connection"},
	BadStartupParam:     {Client, "bad_startup_param", wire.CodeProtocolViolation, "%v", "bad startup parameter"},
	NoSuchDatabase:      {Client, "no_such_database", wire.CodeInvalidCatalogName, "no such database: %s", "no route for database"},
	EmptyPassword:       {Client, "empty_password", wire.CodeInvalidPassword, "password authentication failed for user %q", "empty password"},
	LoginTimeout:        {Client, "login_timeout", wire.CodeProtocolViolation, "login not finished within client_login_timeout (%s)", "client_login_timeout expired"},
	AuthFailed:          {Client, "auth_failed", wire.CodeInvalidPassword, "password authentication failed for user %q", "password authentication failed"},
	AuthProtocol:        {Client, "auth_protocol", wire.CodeProtocolViolation, "%s", "authentication exchange broken by the client"},
	NoClientCert:        {Client, "no_client_cert", wire.CodeInvalidAuthSpec, "connection requires a valid client certificate", "no client certificate"},
	CertUserMismatch:    {Client, "cert_user_mismatch", wire.CodeInvalidAuthSpec, "certificate authentication failed for user %q", "client certificate names another user"},
	CleartextNeedsTLS:   {Client, "cleartext_needs_tls", wire.CodeInvalidAuthSpec, "auth_type plain sends the password in cleartext and needs a TLS connection", "cleartext password without TLS"},
	TooManyClients:      {Client, "max_client_conn", wire.CodeTooManyConnections, "no more connections allowed (max_client_conn)", "over max_client_conn"},
	Panic:               {Client, "panic", wire.CodeInternalError, "internal error in pgvalve", "session panic"},
	ProtocolViolation:   {Client, "protocol_violation", wire.CodeProtocolViolation, "%v", "protocol violation"},
	TxInStatementMode:   {Client, "tx_in_statement_mode", wire.CodeFeatureNotSupported, "transaction blocks are not allowed in statement pooling mode", "transaction in statement pooling"},
	IdleTxTimeout:       {Client, "idle_transaction_timeout", wire.CodeIdleInTxTimeout, "terminating connection due to idle-in-transaction timeout (idle_transaction_timeout %s)", "client idle timeout"},
	ClientIdleTimeout:   {Client, "client_idle_timeout", wire.CodeIdleSessionTimeout, "terminating connection due to idle-session timeout (client_idle_timeout %s)", "client idle timeout"},
	ShuttingDown:        {Client, "shutting_down", wire.CodeAdminShutdown, "terminating connection: pgvalve is shutting down", "pgvalve is shutting down"},
	Killed:              {Client, "killed", wire.CodeAdminShutdown, "terminating connection due to administrator command (pgvalve console)", "client ended by an admin command"},

	ServerUnreachable: {Client, "server_unreachable", wire.CodeConnectionFailure, "could not connect to the server within %s: %v", "server unreachable"},
	ServerRefused:     {Client, "server_refused", "", "%s", "server refused"},
	WaitTimeout:       {Client, "wait_timeout", wire.CodeTooManyConnections, "%v", "query_wait_timeout"},
	PoolShutDown:      {Client, "pool_shut_down", wire.CodeAdminShutdown, "pgvalve is shutting down", "pool closed while waiting"},
	ConnectFailed:     {Client, "connect_failed", wire.CodeConnectionFailure, "could not connect to the server: %v", "could not connect to the server"},
	ServerFailed:      {Client, "server_failed", wire.CodeConnectionFailure, "server connection failed: %v", "server connection failed"},
	ServerTLSFailed:   {Client, "server_tls_failed", wire.CodeConnectionFailure, "%v", "server TLS failed"},

	// The client is told what failed, not how: the log has the server's
	// own error, which may name hosts and roles.
	AuthQueryUnreachable: {Client, "auth_query_unreachable", wire.CodeConnectionFailure, "could not look up user %q: the server auth_query runs on cannot be reached", "auth_query: server unreachable"},
	AuthQueryFailed:      {Client, "auth_query_failed", wire.CodeConfigFileError, "could not look up user %q: auth_query failed (pgvalve configuration error)", "auth_query failed"},

	RequestLost:     {Request, "request_lost", wire.CodeConnectionFailure, "%v; the statement may have run; it was not sent again", "server lost under a request"},
	TxLost:          {Request, "transaction_lost", wire.CodeConnectionFailure, "%v; the transaction is rolled back", "server lost under a transaction"},
	InFailedTx:      {Request, "in_failed_transaction", wire.CodeInFailedTx, "current transaction is aborted, commands ignored until end of transaction block", "request in a lost transaction"},
	CanceledInQueue: {Request, "canceled_in_queue", wire.CodeQueryCanceled, "canceling statement due to user request (it was still waiting for a server and never ran)", "request cancelled while queued"},
	PinLimit: {Request, "pin_limit", wire.CodeConfigLimitExceeded, "pgvalve: this statement would keep its server for the rest of the session (%s), " +
		"and %d of its pool's servers are kept so already (max_pinned_servers); end such session state sooner, or use session pooling for this client", "pin refused at max_pinned_servers"},
	Queued: {Request, "queued", "00000", "no server connection free in pool %q; waiting in line (query_wait_timeout %s)", "client queued"},

	ServerWriteFailed:    {Server, "server_write_failed", "", "", "write failed"},
	ServerReadFailed:     {Server, "server_read_failed", "", "", "read failed"},
	ServerUnexpectedCopy: {Server, "server_unexpected_copy", "", "", "unexpected COPY from own query"},
	ServerPeekFailed:     {Server, "server_peek_failed", "", "", "peek failed"},
	ServerClosed:         {Server, "server_closed", "", "", "server closed the connection"},
	ServerSpokeWhileIdle: {Server, "server_spoke_while_idle", "", "", "server sent data while idle"},

	ServerCheckFailed:    {Server, "server_check_failed", "", "", "server_check_delay check failed"},
	ServerLost:           {Server, "server_lost", "", "", "server lost"},
	RelayFailed:          {Server, "relay_failed", "", "", "relay failed"},
	ClientLeftMidRequest: {Server, "client_left_mid_request", "", "", "client left during a request"},
	PinnedStateLeft:      {Server, "pinned_state_left", "", "", "client left session state no statement can undo (LOAD)"},
	RollbackFailed:       {Server, "rollback_failed", "", "", "rollback failed"},
	ResetQueryFailed:     {Server, "reset_query_failed", "", "", "reset query failed"},
	QueryTimeout:         {Server, "query_timeout", "", "", "query_timeout"},
	SafePointFailed:      {Server, "safe_point_failed", "", "", "failed at a safe point"},
	LostTxSetupFailed:    {Server, "lost_tx_setup_failed", "", "", "entering a lost transaction"},

	NotReusable:   {Server, "not_reusable", "", "", "not reusable when given back"},
	IdleTimeout:   {Server, "idle_timeout", "", "", "server_idle_timeout"},
	Lifetime:      {Server, "lifetime", "", "", "server_lifetime"},
	PoolOverSize:  {Server, "pool_over_size", "", "", "pool over its size"},
	SharedLimit:   {Server, "shared_limit", "", "", "made room under a shared limit"},
	PoolPaused:    {Server, "pool_paused", "", "", "pool paused"},
	Reconnect:     {Server, "reconnect", "", "", "RECONNECT renews the pool's servers"},
	PoolDraining:  {Server, "pool_draining", "", "", "pool retired"},
	HostDown:      {Server, "host_down", "", "", "its host left the choice (failed its health check, or no longer has the role)"},
	HostRebalance: {Server, "host_rebalance", "", "", "its host holds more than its share of the pool's servers: one is dialled to another host instead"},
	PoolClosed:    {Server, "pool_closed", "", "", "pool closed"},
}

// String is the reason's stable snake_case name.
func (r Reason) String() string { return r.row().name }

// Kind says what the reason ends.
func (r Reason) Kind() Kind { return r.row().kind }

// Code is the SQLSTATE a client is told, or "".
func (r Reason) Code() string { return r.row().code }

// Log is the reason's text for logs.
func (r Reason) Log() string { return r.row().log }

// Message is the text a client is told, with args filled in when the
// reason's message takes them.
func (r Reason) Message(args ...any) string {
	msg := r.row().msg
	if len(args) == 0 {
		return msg
	}
	return fmt.Sprintf(msg, args...)
}

// AppendError appends the ErrorResponse a client is told for r.
func (r Reason) AppendError(dst []byte, severity string, args ...any) []byte {
	return wire.AppendError(dst, severity, r.Code(), r.Message(args...))
}

// Describe is the log text of r with a detail (often an error's text)
// after it: what a server connection's Broken says.
func (r Reason) Describe(detail string) string {
	if detail == "" {
		return r.Log()
	}
	return r.Log() + ": " + detail
}

func (r Reason) row() *entry {
	if r >= count {
		return &table[None]
	}
	return &table[r]
}

// All lists every reason but None, in table order.
func All() []Reason {
	out := make([]Reason, 0, count-1)
	for r := None + 1; r < count; r++ {
		out = append(out, r)
	}
	return out
}
