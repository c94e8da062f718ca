package difftest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// headerLen is a regular message's type byte and int32 length.
const headerLen = 5

// MaxReply bounds one reply message read by ReadMsg. PostgreSQL's own
// limit is 1 GiB; the generator never asks for a reply anywhere near this,
// so a larger length means a corrupt stream, not a message to allocate.
const MaxReply = 256 << 20

// Msg is one protocol message: its type byte and its body, without the
// length.
type Msg struct {
	Type byte
	Body []byte
}

// Size is the message's size on the wire, its 5-byte header included.
func (m Msg) Size() int { return headerLen + len(m.Body) }

// AppendTo appends the message's wire form to dst.
func (m Msg) AppendTo(dst []byte) []byte {
	dst = append(dst, m.Type)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(m.Body)))
	return append(dst, m.Body...)
}

// Wire is the wire form of a batch of messages.
func Wire(batch []Msg) []byte {
	n := 0
	for _, m := range batch {
		n += m.Size()
	}
	b := make([]byte, 0, n)
	for _, m := range batch {
		b = m.AppendTo(b)
	}
	return b
}

// ReadMsg reads one message of any size up to MaxReply. The body is the
// caller's to keep.
func ReadMsg(r *bufio.Reader) (Msg, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Msg{}, err
	}
	n := int(binary.BigEndian.Uint32(h[1:]))
	if n < 4 || n-4 > MaxReply {
		return Msg{}, fmt.Errorf("reply %q declares a length of %d bytes", h[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return Msg{}, fmt.Errorf("reply %q cut short: %w", h[0], err)
	}
	return Msg{Type: h[0], Body: body}, nil
}

// encode turns a frontend message from pgproto3 into a Msg.
func encode(m pgproto3.FrontendMessage) Msg {
	b, err := m.Encode(nil)
	if err != nil {
		panic(fmt.Sprintf("difftest: encode %T: %v", m, err)) // only for arguments out of protocol range
	}
	return Msg{Type: b[0], Body: b[headerLen:]}
}

// Query is a simple-protocol Query.
func Query(sql string) Msg { return encode(&pgproto3.Query{String: sql}) }

// Parse prepares sql as statement name ("" is the unnamed statement) with
// the given parameter type OIDs.
func Parse(name, sql string, oids ...uint32) Msg {
	return encode(&pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: oids})
}

// Bind binds statement stmt to portal with text parameters and text results.
func Bind(portal, stmt string, params ...string) Msg {
	vals := make([][]byte, len(params))
	for i, p := range params {
		vals[i] = []byte(p)
	}
	return encode(&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt, Parameters: vals})
}

// Describe asks for a statement ('S') or portal ('P') description.
func Describe(kind byte, name string) Msg {
	return encode(&pgproto3.Describe{ObjectType: kind, Name: name})
}

// Execute runs portal, returning at most maxRows rows (0: all).
func Execute(portal string, maxRows uint32) Msg {
	return encode(&pgproto3.Execute{Portal: portal, MaxRows: maxRows})
}

// Close closes a statement ('S') or portal ('P'). Any other kind byte is
// sent as given: PostgreSQL refuses it, and that answer is worth comparing.
func Close(kind byte, name string) Msg {
	body := append([]byte{kind}, name...)
	return Msg{Type: 'C', Body: append(body, 0)}
}

// Sync ends an extended-protocol request.
func Sync() Msg { return Msg{Type: 'S'} }

// Flush asks for the answers so far without ending the request.
func Flush() Msg { return Msg{Type: 'H'} }

// CopyData carries COPY FROM STDIN data.
func CopyData(data []byte) Msg { return Msg{Type: 'd', Body: data} }

// CopyDone ends COPY FROM STDIN data.
func CopyDone() Msg { return Msg{Type: 'c'} }

// CopyFail aborts COPY FROM STDIN with reason.
func CopyFail(reason string) Msg { return encode(&pgproto3.CopyFail{Message: reason}) }

// FunctionCall calls function oid with text arguments and a text result.
func FunctionCall(oid uint32, args ...string) Msg {
	vals := make([][]byte, len(args))
	for i, a := range args {
		vals[i] = []byte(a)
	}
	return encode(&pgproto3.FunctionCall{Function: oid, Arguments: vals})
}

// IsRequestEnd reports whether a client message of type typ ends a request
// that PostgreSQL answers with ReadyForQuery (unless skipped or swallowed
// by a COPY).
func IsRequestEnd(typ byte) bool { return typ == 'Q' || typ == 'S' || typ == 'F' }

// ReadyCount is the number of ReadyForQuery answers to a batch in which no
// request is skipped after an error and no Sync falls inside COPY data.
func ReadyCount(batch []Msg) int {
	n := 0
	for _, m := range batch {
		if IsRequestEnd(m.Type) {
			n++
		}
	}
	return n
}
