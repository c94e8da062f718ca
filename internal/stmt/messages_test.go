package stmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// paramTypes returns the raw int16 count and OIDs a Parse carries.
func paramTypes(oids ...uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(oids)))
	for _, o := range oids {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	return b
}

func encode(t testing.TB, m pgproto3.Message) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatalf("encode %T: %v", m, err)
	}
	return b
}

func TestParseRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse pgproto3.Parse
	}{
		{"a named statement without parameter types", pgproto3.Parse{Name: "s1", Query: "SELECT 1"}},
		{"the unnamed statement", pgproto3.Parse{Query: "SELECT 1"}},
		{"a statement with parameter types", pgproto3.Parse{Name: "s2", Query: "SELECT $1::int + $2", ParameterOIDs: []uint32{23, 20}}},
		{"an empty query", pgproto3.Parse{Name: "e"}},
		{"non-ASCII names and text", pgproto3.Parse{Name: "ünï", Query: "SELECT 'é'", ParameterOIDs: []uint32{0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := encode(t, &tc.parse)
			p, err := DecodeParse(wire[5:])
			if err != nil {
				t.Fatalf("DecodeParse: %v", err)
			}
			if p.Name != tc.parse.Name || p.Query != tc.parse.Query || !bytes.Equal(p.ParamTypes, paramTypes(tc.parse.ParameterOIDs...)) {
				t.Fatalf("DecodeParse = %+v, want %+v", p, tc.parse)
			}
			if got := AppendParse(nil, p.Name, p.Query, p.ParamTypes); !bytes.Equal(got, wire) {
				t.Fatalf("AppendParse = %q, want %q", got, wire)
			}
			prefix := []byte("xyz")
			if got := AppendParse(prefix, p.Name, p.Query, p.ParamTypes); !bytes.Equal(got[3:], wire) || string(got[:3]) != "xyz" {
				t.Fatalf("AppendParse does not append: %q", got)
			}
		})
	}
}

func TestDecodeParseCopiesTheParameterTypes(t *testing.T) {
	body := encode(t, &pgproto3.Parse{Name: "s", Query: "q", ParameterOIDs: []uint32{23}})[5:]
	p, err := DecodeParse(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 0xff
	}
	if !bytes.Equal(p.ParamTypes, paramTypes(23)) {
		t.Fatalf("ParamTypes aliases the body: %x", p.ParamTypes)
	}
}

func TestDecodersRefuseMalformedBodies(t *testing.T) {
	parse := func(b []byte) error { _, err := DecodeParse(b); return err }
	bind := func(b []byte) error { _, _, _, err := BindStatement(b); return err }
	target := func(b []byte) error { _, _, err := Target(b); return err }
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		body   []byte
	}{
		{"a Parse: an empty body", parse, nil},
		{"a Parse: a name without its NUL", parse, []byte("s1")},
		{"a Parse: a query without its NUL", parse, []byte("s1\x00SELECT 1")},
		{"a Parse: no parameter count", parse, []byte("s1\x00SELECT 1\x00")},
		{"a Parse: half a parameter count", parse, []byte("s1\x00SELECT 1\x00\x00")},
		{"a Parse: fewer OIDs than counted", parse, append([]byte("s1\x00q\x00"), 0, 2, 0, 0, 0, 23)},
		{"a Parse: more bytes than counted", parse, append([]byte("s1\x00q\x00"), 0, 0, 1)},
		{"a Parse: a truncated OID", parse, append([]byte("s1\x00q\x00"), 0, 1, 0, 0, 23)},
		{"a Bind: an empty body", bind, nil},
		{"a Bind: a portal without its NUL", bind, []byte("p1")},
		{"a Bind: a statement without its NUL", bind, []byte("p1\x00s1")},
		{"a Describe or Close: an empty body", target, nil},
		{"a Describe or Close: a kind alone", target, []byte("S")},
		{"a Describe or Close: an unknown kind", target, []byte("X\x00")},
		{"a Describe or Close: a name without its NUL", target, []byte("Ss1")},
		{"a Describe or Close: bytes after the name", target, []byte("Ss1\x00x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.decode(tc.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decoding %q = %v, want ErrMalformed", tc.body, err)
			}
		})
	}
}

func TestBindStatementFindsTheNameAndAppendRenamedReplacesIt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bind    pgproto3.Bind
		newName string
	}{
		{"a named statement into the unnamed portal", pgproto3.Bind{PreparedStatement: "s1"}, "pgv_0123"},
		{"a named portal with parameters and formats", pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "stmt",
			ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 7}, nil}, ResultFormatCodes: []int16{0, 1}}, "x"},
		{"the unnamed statement renamed", pgproto3.Bind{DestinationPortal: "p", Parameters: [][]byte{[]byte("a")}}, "pgv_named"},
		{"a named statement renamed to the unnamed one", pgproto3.Bind{PreparedStatement: "long_statement_name"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := encode(t, &tc.bind)[5:]
			name, start, end, err := BindStatement(body)
			if err != nil {
				t.Fatalf("BindStatement: %v", err)
			}
			if name != tc.bind.PreparedStatement || string(body[start:end]) != name {
				t.Fatalf("BindStatement = %q [%d:%d], want %q", name, start, end, tc.bind.PreparedStatement)
			}
			msg := AppendRenamed([]byte("pre"), 'B', body, start, end, tc.newName)
			if string(msg[:3]) != "pre" {
				t.Fatalf("AppendRenamed does not append: %q", msg)
			}
			msg = msg[3:]
			if msg[0] != 'B' || int(binary.BigEndian.Uint32(msg[1:])) != len(msg)-1 {
				t.Fatalf("AppendRenamed header is wrong: %q", msg)
			}
			var got pgproto3.Bind
			if err := got.Decode(msg[5:]); err != nil {
				t.Fatalf("renamed Bind does not decode: %v", err)
			}
			want := tc.bind
			want.PreparedStatement = tc.newName
			if !bytes.Equal(encode(t, &got), encode(t, &want)) {
				t.Fatalf("renamed Bind = %+v, want %+v", got, want)
			}
		})
	}
}

func TestTargetAndAppendTargetRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  byte
		kind byte
		obj  string
	}{
		{"a Describe of a statement", 'D', 'S', "s1"},
		{"a Describe of the unnamed portal", 'D', 'P', ""},
		{"a Close of a statement", 'C', 'S', "pgv_noop"},
		{"a Close of a named portal", 'C', 'P', "p1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []byte
			if tc.typ == 'D' {
				want = encode(t, &pgproto3.Describe{ObjectType: tc.kind, Name: tc.obj})
			} else {
				want = encode(t, &pgproto3.Close{ObjectType: tc.kind, Name: tc.obj})
			}
			if got := AppendTarget(nil, tc.typ, tc.kind, tc.obj); !bytes.Equal(got, want) {
				t.Fatalf("AppendTarget = %q, want %q", got, want)
			}
			kind, name, err := Target(want[5:])
			if err != nil || kind != tc.kind || name != tc.obj {
				t.Fatalf("Target = %q %q %v, want %q %q", kind, name, err, tc.kind, tc.obj)
			}
		})
	}
}

func TestServerNameDependsOnTextAndParameterTypesOnly(t *testing.T) {
	a := ServerName("SELECT 1", paramTypes())
	for _, tc := range []struct {
		name  string
		other string
		same  bool
	}{
		{"the same content gives the same name", ServerName("SELECT 1", paramTypes()), true},
		{"another text gives another name", ServerName("SELECT 2", paramTypes()), false},
		{"parameter types give another name", ServerName("SELECT 1", paramTypes(23)), false},
		{"another parameter type gives another name", ServerName("SELECT 1", paramTypes(25)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.other == a) != tc.same {
				t.Fatalf("ServerName = %q vs %q, same=%v", tc.other, a, tc.same)
			}
		})
	}
	if !strings.HasPrefix(a, "pgv_") || len(a) != len("pgv_")+24 || a == noopName {
		t.Fatalf("ServerName = %q: want pgv_ and 24 hex digits", a)
	}
}

func TestDecodedCoversTheMessagesTheTrackerDecodes(t *testing.T) {
	for typ := 0; typ < 256; typ++ {
		want := strings.IndexByte("PBDC", byte(typ)) >= 0
		if got := Decoded(byte(typ)); got != want {
			t.Errorf("Decoded(%q) = %v, want %v", byte(typ), got, want)
		}
	}
}
