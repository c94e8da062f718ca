package stmt

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Frontend messages, built with pgproto3 as a driver would send them.

func fe(msgs ...pgproto3.FrontendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			panic(err)
		}
	}
	return b
}

func oids(n int) []uint32 {
	if n == 0 {
		return nil
	}
	return []uint32{23}
}

func params(n int) [][]byte {
	if n == 0 {
		return nil
	}
	return [][]byte{[]byte("1")}
}

func mParse(name, query string, nparams int) *pgproto3.Parse {
	return &pgproto3.Parse{Name: name, Query: query, ParameterOIDs: oids(nparams)}
}

func mBind(portal, name string, nparams int) *pgproto3.Bind {
	return &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: name, Parameters: params(nparams)}
}

func mDescribe(kind byte, name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: kind, Name: name}
}

func mClose(kind byte, name string) *pgproto3.Close {
	return &pgproto3.Close{ObjectType: kind, Name: name}
}

func mExecute(portal string) *pgproto3.Execute { return &pgproto3.Execute{Portal: portal} }

func mQuery(q string) *pgproto3.Query { return &pgproto3.Query{String: q} }

var (
	mSync  = &pgproto3.Sync{}
	mFlush = &pgproto3.Flush{}
)

// backendMessage is one decoded answer, for comparing and printing.
type backendMessage struct {
	typ  byte
	body []byte
}

func (b backendMessage) String() string {
	switch b.typ {
	case 'E', 'N':
		var e pgproto3.ErrorResponse
		if e.Decode(b.body) == nil {
			return fmt.Sprintf("%c:%s %q", b.typ, e.Code, e.Message)
		}
	case 'Z':
		return "Z:" + string(b.body)
	case 'C':
		return "C:" + strings.TrimSuffix(string(b.body), "\x00")
	case 'D':
		return "D"
	case 'T':
		return "T"
	}
	return string(b.typ)
}

func splitMessages(t testing.TB, b []byte) []backendMessage {
	t.Helper()
	var out []backendMessage
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated message %q", b)
		}
		n := 1 + int(binary.BigEndian.Uint32(b[1:5]))
		if n < 5 || n > len(b) {
			t.Fatalf("bad message length in %q", b)
		}
		out = append(out, backendMessage{b[0], b[5:n]})
		b = b[n:]
	}
	return out
}

// messageTypes summarises a stream of answers: "1", "Z:I", "E:42P05", ...
func messageTypes(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	for _, m := range splitMessages(t, b) {
		s := m.String()
		if m.typ == 'E' || m.typ == 'N' {
			s = s[:len("E:42P05")]
		}
		out = append(out, s)
	}
	return out
}

// modelDeallocate reads the generator's DEALLOCATE forms: an optional
// PREPARE, ALL, or one name, quoted or folded to lower case (ASCII only).
func modelDeallocate(q string) (name string, all, ok bool) {
	w := strings.Fields(strings.TrimSuffix(q, ";"))
	if len(w) < 2 || !strings.EqualFold(w[0], "DEALLOCATE") {
		return "", false, false
	}
	if len(w) == 3 && strings.EqualFold(w[1], "PREPARE") {
		w = w[1:]
	}
	if len(w) != 2 {
		return "", false, false
	}
	if strings.EqualFold(w[1], "ALL") {
		return "", true, true
	}
	if strings.HasPrefix(w[1], `"`) {
		return strings.ReplaceAll(strings.Trim(w[1], `"`), `""`, `"`), false, true
	}
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, w[1]), false, true
}
