package stmt

import (
	"bytes"
	"encoding/binary"
)

// A statement's shape is what PostgreSQL fixes when it parses it: its
// parameter types and its result columns (names and types). PostgreSQL
// refuses to run a prepared statement whose result columns changed since
// (0A000 "cached plan must not change result type"), so a client's
// statement may only use a server's copy of the same shape: a copy
// prepared before a table was dropped and recreated is another statement,
// whatever its text. Shapes are hashed from the answer to a Describe of
// the statement; 0 means unknown.

// foldShape folds one message of a statement's description (a
// ParameterDescription, RowDescription or NoData) into h. A
// RowDescription's table OID and column number name where a column comes
// from, which PostgreSQL does not compare, so they are left out.
func foldShape(h uint64, typ byte, body []byte) uint64 {
	h = fnv(h, []byte{typ})
	if typ != 'T' {
		return fnv(h, body)
	}
	if len(body) < 2 {
		return fnv(h, body)
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	for range n {
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest) < i+1+18 {
			return fnv(h, rest)
		}
		h = fnv(h, rest[:i+1])         // name
		h = fnv(h, rest[i+1+6:i+1+18]) // type, size, modifier, format
		rest = rest[i+1+18:]
	}
	return h
}

const fnvOffset = 14695981039346656037

func fnv(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// shapeDone turns a folded hash into a shape: never 0, which means
// unknown.
func shapeDone(h uint64) uint64 { return max(h, 1) }
