// Package stmt makes named prepared statements work in transaction pooling.
// A client's statements live in its own Registry under its own names; on a
// server they live under names derived from their content, so identical
// statements from many clients share one server-side prepare. The Rewriter
// turns a client's extended-protocol messages into what the server it holds
// now needs (preparing statements it lacks first), and the Queue matches the
// server's answers to them, hiding answers to pgvalve's own messages and
// answering for messages pgvalve did not forward.
package stmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
)

// ErrMalformed is a Parse, Bind, Describe or Close body that does not
// decode; the client is ended with 08P01.
var ErrMalformed = errors.New("malformed extended-protocol message")

// Decoded reports whether messages of type typ are decoded by the Tracker
// and so must be read whole.
func Decoded(typ byte) bool {
	switch typ {
	case 'P', 'B', 'D', 'C':
		return true
	}
	return false
}

// serverPrefix starts every server-side name pgvalve makes.
const serverPrefix = "pgv_"

// ServerName derives a statement's server-side name from its content: the
// query text and the parameter type OIDs as sent.
func ServerName(query string, paramTypes []byte) string {
	var stack [512]byte // most queries: hashed without a heap copy
	sum := sha256.Sum256(append(append(append(stack[:0], query...), 0), paramTypes...))
	var name [len(serverPrefix) + 24]byte
	copy(name[:], serverPrefix)
	hex.Encode(name[len(serverPrefix):], sum[:12])
	return string(name[:]) // the one allocation
}

// cstr reads a NUL-terminated string at the start of b.
func cstr(b []byte) (s []byte, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// Parse is a decoded Parse body. ParamTypes is the raw int16 count and OIDs
// that follow the query, kept as bytes so it can be copied back unchanged.
type Parse struct {
	Name       string
	Query      string
	ParamTypes []byte
}

// DecodeParse decodes a Parse body.
func DecodeParse(body []byte) (Parse, error) { return decodeParse(body, nil) }

// decodeParse decodes a Parse body, taking the query and parameter types
// from like instead of copying them when they are the same.
func decodeParse(body []byte, like *Parse) (Parse, error) {
	name, rest, ok := cstr(body)
	if !ok {
		return Parse{}, ErrMalformed
	}
	query, rest, ok := cstr(rest)
	if !ok || len(rest) < 2 {
		return Parse{}, ErrMalformed
	}
	// PostgreSQL reads the count as a signed int16 and no types for a
	// negative one.
	n := max(int(int16(binary.BigEndian.Uint16(rest))), 0)
	if len(rest) != 2+4*n {
		return Parse{}, ErrMalformed
	}
	if like != nil && string(query) == like.Query && bytes.Equal(rest, like.ParamTypes) {
		return Parse{Name: string(name), Query: like.Query, ParamTypes: like.ParamTypes}, nil
	}
	types := noParamTypes
	if !bytes.Equal(rest, noParamTypes) {
		types = bytes.Clone(rest)
	}
	return Parse{Name: string(name), Query: string(query), ParamTypes: types}, nil
}

// noParamTypes is the ParamTypes of every Parse with a count of 0,
// shared: never modified.
var noParamTypes = []byte{0, 0}

// AppendParse appends a whole Parse message for the named statement.
func AppendParse(dst []byte, name, query string, paramTypes []byte) []byte {
	n := 4 + len(name) + 1 + len(query) + 1 + len(paramTypes)
	dst = append(dst, 'P')
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = append(dst, query...)
	dst = append(dst, 0)
	return append(dst, paramTypes...)
}

// BindStatement returns a Bind body's statement name and the byte range it
// occupies in the body, so it can be replaced without decoding the rest.
func BindStatement(body []byte) (name string, start, end int, err error) {
	_, rest, ok := cstr(body) // portal
	if !ok {
		return "", 0, 0, ErrMalformed
	}
	start = len(body) - len(rest)
	stmt, _, ok := cstr(rest)
	if !ok {
		return "", 0, 0, ErrMalformed
	}
	return string(stmt), start, start + len(stmt), nil
}

// AppendRenamed appends a whole message of type typ whose body is body with
// body[start:end] replaced by name.
func AppendRenamed(dst []byte, typ byte, body []byte, start, end int, name string) []byte {
	n := 4 + start + len(name) + len(body) - end
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, body[:start]...)
	dst = append(dst, name...)
	return append(dst, body[end:]...)
}

// Target decodes a Describe or Close body: 'S' or 'P' and the name.
func Target(body []byte) (kind byte, name string, err error) {
	if len(body) < 2 {
		return 0, "", ErrMalformed
	}
	n, rest, ok := cstr(body[1:])
	if !ok || len(rest) != 0 || (body[0] != 'S' && body[0] != 'P') {
		return 0, "", ErrMalformed
	}
	return body[0], string(n), nil
}

// AppendTarget appends a whole Describe ('D') or Close ('C') message.
func AppendTarget(dst []byte, typ, kind byte, name string) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+1+len(name)+1))
	dst = append(dst, kind)
	dst = append(dst, name...)
	return append(dst, 0)
}
