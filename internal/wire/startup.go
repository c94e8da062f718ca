package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Request codes of the packets a client may send before a StartupMessage.
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
)

// MaxServerMessage bounds messages from servers: PostgreSQL never sends one
// over 1 GiB (MaxAllocSize).
const MaxServerMessage = 1 << 30

// MaxStartupPacket is PostgreSQL's own limit on a startup packet
// (MAX_STARTUP_PACKET_LENGTH in libpq/pqcomm.h).
const MaxStartupPacket = 10000

// StartupKind tells which pre-authentication packet arrived.
type StartupKind int

// The packets a client may open a connection with.
const (
	KindStartup StartupKind = iota + 1
	KindSSLRequest
	KindGSSENCRequest
	KindCancel
)

// Startup is a decoded pre-authentication packet.
type Startup struct {
	Kind StartupKind
	// Major and Minor protocol version of a StartupMessage.
	Major, Minor uint16
	// Params of a StartupMessage, in the order sent.
	Params []Param
	// Cancel holds a CancelRequest's key.
	Cancel pgproto3.CancelRequest
}

// Param is one startup parameter.
type Param struct{ Name, Value string }

// Get returns the value of the named startup parameter.
func (s *Startup) Get(name string) (string, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// ErrBadStartup wraps every startup-packet decoding failure.
var ErrBadStartup = errors.New("invalid startup packet")

// ReadStartup reads exactly one pre-authentication packet from src, and
// never past it, so bytes a client pipelines after an SSLRequest are never
// consumed here. Every valid packet is 8 bytes at least, so the first read
// asks for 8: an SSLRequest, sent whole, takes one system call, not two.
func ReadStartup(src io.Reader) (*Startup, error) {
	var head [8]byte
	got, err := io.ReadAtLeast(src, head[:], 4) // the length, at least
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(head[:4]))
	if n < 8 || n > MaxStartupPacket {
		return nil, fmt.Errorf("%w: length %d", ErrBadStartup, n)
	}
	body := make([]byte, n-4)
	copy(body, head[4:got])
	if _, err := io.ReadFull(src, body[got-4:]); err != nil {
		return nil, err
	}
	return ParseStartup(body)
}

// ParseStartup decodes a startup packet body (everything after the length).
func ParseStartup(body []byte) (*Startup, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("%w: too short", ErrBadStartup)
	}
	code := binary.BigEndian.Uint32(body)
	switch code {
	case codeSSLRequest, codeGSSENCRequest:
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: bad length for request %d", ErrBadStartup, code)
		}
		if code == codeSSLRequest {
			return &Startup{Kind: KindSSLRequest}, nil
		}
		return &Startup{Kind: KindGSSENCRequest}, nil
	case codeCancelRequest:
		s := &Startup{Kind: KindCancel}
		if err := s.Cancel.Decode(body); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadStartup, err)
		}
		return s, nil
	}
	s := &Startup{Kind: KindStartup, Major: uint16(code >> 16), Minor: uint16(code)}
	params, err := parseParams(body[4:])
	if err != nil {
		return nil, err
	}
	s.Params = params
	return s, nil
}

// parseParams decodes NUL-terminated name/value pairs ended by an empty
// name. The names and values are parts of one string made of b, and the
// slice is made once.
func parseParams(raw []byte) ([]Param, error) {
	b := string(raw)
	params := make([]Param, 0, strings.Count(b, "\x00")/2)
	for {
		name, rest, ok := cstring(b)
		if !ok {
			return nil, fmt.Errorf("%w: unterminated parameter list", ErrBadStartup)
		}
		if name == "" {
			if len(rest) != 0 {
				return nil, fmt.Errorf("%w: bytes after parameter list", ErrBadStartup)
			}
			return params, nil
		}
		value, rest2, ok := cstring(rest)
		if !ok {
			return nil, fmt.Errorf("%w: missing value for parameter %q", ErrBadStartup, name)
		}
		params = append(params, Param{Name: name, Value: value})
		b = rest2
	}
}

func cstring(b string) (s, rest string, ok bool) {
	if i := strings.IndexByte(b, 0); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return "", "", false
}

// IsFrontendType reports whether a client may send messages of type t after
// startup (protocol 3.0); anything else is a protocol violation.
func IsFrontendType(t byte) bool {
	switch t {
	case 'B', 'C', 'd', 'c', 'f', 'D', 'E', 'H', 'F', 'p', 'P', 'Q', 'S', 'X':
		return true
	}
	return false
}
