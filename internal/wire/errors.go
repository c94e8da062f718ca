package wire

import (
	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes pgvalve itself sends. Clients and ORMs branch on these, so
// each situation keeps its own code (Prisma maps 53300 to P2037, for one).
const (
	CodeTooManyConnections   = "53300" // pool wait timed out, client cap reached
	CodeConfigLimitExceeded  = "53400" // max_pinned_servers reached
	CodeConnectionFailure    = "08006" // server unreachable or lost
	CodeProtocolViolation    = "08P01" // malformed or oversized message
	CodeQueryCanceled        = "57014"
	CodeInvalidPassword      = "28P01"
	CodeInvalidAuthSpec      = "28000" // no user name, bad auth method
	CodeInvalidCatalogName   = "3D000" // no such database
	CodeFeatureNotSupported  = "0A000"
	CodeAdminShutdown        = "57P01"
	CodeInternalError        = "XX000"
	CodeConfigFileError      = "F0000"
	CodeCannotConnectNow     = "57P03"
	CodeIdleSessionTimeout   = "57P05"
	CodeIdleInTxTimeout      = "25P03"
	CodeInFailedTx           = "25P02"
	CodeInvalidParameterName = "42704"
)

// Severities as PostgreSQL spells them.
const (
	SeverityFatal  = "FATAL"
	SeverityError  = "ERROR"
	SeverityNotice = "NOTICE"
)

// AppendError appends an ErrorResponse to dst.
func AppendError(dst []byte, severity, code, message string) []byte {
	m := pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: message}
	out, err := m.Encode(dst)
	if err != nil {
		// Encode fails only for oversized fields; our messages are short.
		panic(err)
	}
	return out
}

// AppendNotice appends a NoticeResponse to dst.
func AppendNotice(dst []byte, code, message string) []byte {
	m := pgproto3.NoticeResponse{Severity: SeverityNotice, SeverityUnlocalized: SeverityNotice, Code: code, Message: message}
	out, err := m.Encode(dst)
	if err != nil {
		panic(err)
	}
	return out
}

// Append encodes msg after dst. Backend messages pgvalve builds are small and
// well formed, so an encoding error is a bug.
func Append(dst []byte, msg pgproto3.BackendMessage) []byte {
	out, err := msg.Encode(dst)
	if err != nil {
		panic(err)
	}
	return out
}
