package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func packet(code uint32, rest string) []byte {
	b := make([]byte, 8, 8+len(rest))
	binary.BigEndian.PutUint32(b, uint32(8+len(rest)))
	binary.BigEndian.PutUint32(b[4:], code)
	return append(b, rest...)
}

func TestReadStartupDecodesEachPacketKind(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  StartupKind
		check func(*Startup) bool
	}{
		{"ssl request", packet(codeSSLRequest, ""), KindSSLRequest, nil},
		{"gss request", packet(codeGSSENCRequest, ""), KindGSSENCRequest, nil},
		{"cancel request", packet(codeCancelRequest, "\x00\x00\x00\x07abcd"), KindCancel, func(s *Startup) bool {
			return s.Cancel.ProcessID == 7 && string(s.Cancel.SecretKey) == "abcd"
		}},
		{"startup 3.0", packet(3<<16, "user\x00alice\x00database\x00app\x00\x00"), KindStartup, func(s *Startup) bool {
			u, _ := s.Get("user")
			d, _ := s.Get("database")
			return s.Major == 3 && s.Minor == 0 && u == "alice" && d == "app" && len(s.Params) == 2
		}},
		{"startup 3.2 keeps the minor version", packet(3<<16|2, "user\x00bob\x00\x00"), KindStartup, func(s *Startup) bool {
			return s.Minor == 2
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			trailing := []byte("pipelined")
			src := bytes.NewReader(append(append([]byte{}, tc.input...), trailing...))
			s, err := ReadStartup(src)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tc.want {
				t.Fatalf("kind = %v, want %v", s.Kind, tc.want)
			}
			if tc.check != nil && !tc.check(s) {
				t.Fatalf("decoded %+v", s)
			}
			if src.Len() != len(trailing) {
				t.Fatalf("ReadStartup consumed bytes after the packet")
			}
		})
	}
}

// countingReader counts the reads made of it.
type countingReader struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

func TestAnSSLRequestSentWholeIsReadInOneReadAndNothingPastIt(t *testing.T) {
	src := &countingReader{r: bytes.NewReader(append(packet(codeSSLRequest, ""), "\x16pipelined"...))}
	s, err := ReadStartup(src)
	if err != nil || s.Kind != KindSSLRequest {
		t.Fatalf("read %+v, %v", s, err)
	}
	if src.reads != 1 || src.r.Len() != len("\x16pipelined") {
		t.Fatalf("%d reads, %d bytes left after it", src.reads, src.r.Len())
	}
}

func TestReadStartupRejectsMalformedPackets(t *testing.T) {
	cases := map[string][]byte{
		"length too small":         {0, 0, 0, 4, 0, 3, 0, 0},
		"length too large":         {0, 0, 0x30, 0, 0, 3, 0, 0},
		"unterminated params":      packet(3<<16, "user\x00alice"),
		"name without value":       packet(3<<16, "user\x00\x00"[:5]),
		"bytes after terminator":   packet(3<<16, "user\x00a\x00\x00junk"),
		"ssl request with payload": packet(codeSSLRequest, "x"),
		"short cancel":             packet(codeCancelRequest, "\x00\x01"),
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ReadStartup(bytes.NewReader(input))
			if !errors.Is(err, ErrBadStartup) {
				t.Fatalf("err = %v, want ErrBadStartup", err)
			}
		})
	}
}

func FuzzParseStartup(f *testing.F) {
	f.Add(packet(3<<16, "user\x00alice\x00\x00")[4:])
	f.Add(packet(codeCancelRequest, "\x00\x00\x00\x07abcd")[4:])
	f.Add([]byte{0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := ParseStartup(body)
		if err != nil {
			return
		}
		if s.Kind == KindStartup {
			for _, p := range s.Params {
				if p.Name == "" || bytes.IndexByte([]byte(p.Name+p.Value), 0) >= 0 {
					t.Fatalf("bad param %q=%q", p.Name, p.Value)
				}
			}
		}
	})
}
