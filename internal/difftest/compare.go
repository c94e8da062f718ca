package difftest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Normalize returns m as the comparison sees it. Only what a pooler
// legitimately changes is normalised (see the package documentation):
//
//   - RowDescription: each field's table OID is zeroed, because the direct
//     and pooled runs use two databases whose tables have different OIDs.
//   - ErrorResponse and NoticeResponse: the File, Line and Routine fields
//     are dropped, because the answers pgvalve makes itself (a deferred
//     PQprepare's 42P05, for one) do not carry PostgreSQL's source location.
//     Every other field, and their order, is compared.
//   - NotificationResponse: the sending backend's process ID is zeroed:
//     the direct and pooled runs' notifications come from different
//     backends, and through pgvalve from a pool server rather than the
//     backend of the client's BackendKeyData.
//
// The result may share memory with m.
func Normalize(m Msg) Msg {
	switch m.Type {
	case 'T':
		return Msg{Type: m.Type, Body: zeroTableOIDs(m.Body)}
	case 'E', 'N':
		return Msg{Type: m.Type, Body: dropSourceFields(m.Body)}
	case 'A':
		if len(m.Body) >= 4 {
			body := bytes.Clone(m.Body)
			binary.BigEndian.PutUint32(body, 0)
			return Msg{Type: m.Type, Body: body}
		}
	}
	return m
}

// Reorder moves a reply's NotificationResponses after its other messages,
// keeping the order within each: for a step with Notifies, whose
// notifications pgvalve delivers through its shared listening connection,
// at a time of its own.
func Reorder(ms []Msg) []Msg {
	out := make([]Msg, 0, len(ms))
	var notes []Msg
	for _, m := range ms {
		if m.Type == 'A' {
			notes = append(notes, m)
		} else {
			out = append(out, m)
		}
	}
	return append(out, notes...)
}

// zeroTableOIDs zeroes the table OID of every RowDescription field; a body
// that does not decode is returned as it is, to differ visibly.
func zeroTableOIDs(body []byte) []byte {
	if len(body) < 2 {
		return body
	}
	out := bytes.Clone(body)
	n := int(binary.BigEndian.Uint16(out))
	p := 2
	for range n {
		end := bytes.IndexByte(out[p:], 0)
		if end < 0 || p+end+1+18 > len(out) {
			return body
		}
		p += end + 1
		binary.BigEndian.PutUint32(out[p:], 0) // table OID; the attribute number and type follow
		p += 18
	}
	return out
}

// dropSourceFields removes the F, L and R fields of an error or notice.
func dropSourceFields(body []byte) []byte {
	var out []byte
	for p := 0; p < len(body) && body[p] != 0; {
		end := bytes.IndexByte(body[p:], 0)
		if end < 0 {
			return body
		}
		field := body[p : p+end+1]
		if f := field[0]; f != 'F' && f != 'L' && f != 'R' {
			out = append(out, field...)
		}
		p += end + 1
	}
	return append(out, 0)
}

// Equal reports whether two replies are the same after Normalize.
func Equal(a, b Msg) bool {
	a, b = Normalize(a), Normalize(b)
	return a.Type == b.Type && bytes.Equal(a.Body, b.Body)
}

// FirstDifference is the index of the first message where want and got
// differ after Normalize, or -1 when they are equal. When one is a prefix
// of the other it is the shorter one's length.
func FirstDifference(want, got []Msg) int {
	for i := range min(len(want), len(got)) {
		if !Equal(want[i], got[i]) {
			return i
		}
	}
	if len(want) != len(got) {
		return min(len(want), len(got))
	}
	return -1
}

// backendNames names the backend message types a report shows.
var backendNames = map[byte]string{
	'1': "ParseComplete", '2': "BindComplete", '3': "CloseComplete", 'A': "NotificationResponse",
	'C': "CommandComplete", 'D': "DataRow", 'E': "ErrorResponse", 'G': "CopyInResponse",
	'H': "CopyOutResponse", 'I': "EmptyQueryResponse", 'K': "BackendKeyData", 'N': "NoticeResponse",
	'R': "Authentication", 'S': "ParameterStatus", 'T': "RowDescription", 'V': "FunctionCallResponse",
	'W': "CopyBothResponse", 'Z': "ReadyForQuery", 'c': "CopyDone", 'd': "CopyData", 'n': "NoData",
	's': "PortalSuspended", 't': "ParameterDescription", 'v': "NegotiateProtocolVersion",
}

// DescribeReply is a one-line reading of a backend message: its type, size
// and, where it helps, its content (an error's severity, code and text).
func DescribeReply(m Msg) string {
	name := backendNames[m.Type]
	if name == "" {
		name = fmt.Sprintf("%q", m.Type)
	}
	head := fmt.Sprintf("%s (%d bytes)", name, m.Size())
	switch m.Type {
	case 'E', 'N':
		var e pgproto3.ErrorResponse
		if e.Decode(m.Body) == nil {
			return fmt.Sprintf("%s %s %s %s", head, e.Severity, e.Code, short(e.Message, 160))
		}
	case 'S':
		var ps pgproto3.ParameterStatus
		if ps.Decode(m.Body) == nil {
			return fmt.Sprintf("%s %s=%q", head, ps.Name, short(ps.Value, 120))
		}
	case 'A':
		var n pgproto3.NotificationResponse
		if n.Decode(m.Body) == nil {
			return fmt.Sprintf("%s pid %d %q %q", head, n.PID, n.Channel, short(n.Payload, 120))
		}
	case 'C':
		return head + " " + short(string(bytes.TrimRight(m.Body, "\x00")), 120)
	case 'Z':
		if len(m.Body) == 1 {
			return fmt.Sprintf("%s %c", head, m.Body[0])
		}
	case 'D', 'd', 'T', 'V':
		return head + " " + short(fmt.Sprintf("%q", m.Body), 120)
	}
	return head
}

// DescribeBatch lists a batch's message types and sizes, runs of equal
// types folded: "P(45) B(30) E(9) S(5)".
func DescribeBatch(batch []Msg) string {
	var sb strings.Builder
	for i := 0; i < len(batch); {
		j := i
		for j < len(batch) && batch[j].Type == batch[i].Type && batch[j].Size() == batch[i].Size() {
			j++
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%c(%d)", batch[i].Type, batch[i].Size())
		if j-i > 1 {
			fmt.Fprintf(&sb, "×%d", j-i)
		}
		i = j
	}
	return sb.String()
}

// short cuts s to n bytes, saying how long it was.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:n], len(s))
}

// IsFatal reports whether m is an ErrorResponse of severity FATAL or PANIC.
func IsFatal(m Msg) bool {
	var e pgproto3.ErrorResponse
	return m.Type == 'E' && e.Decode(m.Body) == nil && (e.Severity == "FATAL" || e.Severity == "PANIC")
}

// ErrorCode is the SQLSTATE of an ErrorResponse or NoticeResponse, "" for
// other messages.
func ErrorCode(m Msg) string {
	var e pgproto3.ErrorResponse
	if m.Type != 'E' && m.Type != 'N' || e.Decode(m.Body) != nil {
		return ""
	}
	return e.Code
}
