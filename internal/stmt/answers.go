package stmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// ErrDesync means the server answered something the tracker did not
// expect: the connection's state is unknown and it must be closed.
var ErrDesync = errors.New("server answer does not match the messages sent")

// BeginAnswers starts rewriting a batch of server messages.
func (t *Tracker) BeginAnswers() { t.outEdits.reset() }

// ApplyAnswers returns the batch to send to the client.
func (t *Tracker) ApplyAnswers(span []byte) []byte {
	if len(t.outEdits.list) == 0 {
		return span
	}
	t.outBuf = t.outEdits.apply(span, t.outBuf)
	return t.outBuf
}

// Server matches one server message (type typ, whole body or nil when
// streamed, at offset off in the batch) to the oldest expected answer.
func (t *Tracker) Server(typ byte, body []byte, off int) error {
	switch typ {
	case 'N', 'A', 'S':
		return nil // asynchronous: notices, notifications, parameters
	}
	for len(t.q) > 0 && t.q[0].typ == copyEnd {
		t.pop()
	}
	if len(t.q) == 0 {
		return fmt.Errorf("%w: %q with nothing pending", ErrDesync, typ)
	}
	h := &t.q[0]
	if typ == 'E' {
		return t.failed(h, body, off)
	}
	done, ok := answers(h, typ)
	if !ok {
		return fmt.Errorf("%w: %q answering %q", ErrDesync, typ, h.typ)
	}
	if typ == 'G' {
		t.copyStarted()
		h = &t.q[0]
	}
	if typ == 'C' && h.typ == 'Q' {
		if h.tag != "" {
			from := len(t.outEdits.buf)
			t.outEdits.buf = appendTag(t.outEdits.buf, h.tag)
			t.outEdits.replace(off, 5+len(body), from)
		}
		if !h.reset {
			t.sessionReset(body)
		}
	}
	if typ == 'Z' {
		t.status = '?'
		if len(body) == 1 {
			t.status = body[0]
		}
	}
	if !done {
		return nil
	}
	switch {
	case h.hide:
		t.outEdits.replace(off, 5+len(body), len(t.outEdits.buf))
	case h.as != 0:
		from := len(t.outEdits.buf)
		t.outEdits.buf = append(t.outEdits.buf, h.as, 0, 0, 0, 4)
		t.outEdits.replace(off, 5+len(body), from)
	}
	t.pop()
	return nil
}

func (t *Tracker) pop() {
	switch t.q[0].typ {
	case 'E', 'Q', 'F':
		t.execs--
	}
	t.q = t.q[:copy(t.q, t.q[1:])]
	t.settle()
}

// answers reports whether a server message of type typ belongs to the
// expected answer h, and whether it completes it.
func answers(h *entry, typ byte) (done, ok bool) {
	switch h.typ {
	case 'P':
		return true, typ == '1'
	case 'B':
		return true, typ == '2'
	case 'C':
		return true, typ == '3'
	case 'D':
		if typ == 't' && h.descS {
			return false, true
		}
		return true, typ == 'T' || typ == 'n'
	case 'E':
		switch typ {
		case 'C', 'I', 's':
			return true, true
		case 'D', 'H', 'G', 'W', 'd', 'c':
			return false, true
		}
	case 'S':
		return true, typ == 'Z'
	case 'Q', 'F':
		if typ == 'Z' {
			return true, true
		}
		return false, true // rows, COPY, FunctionCallResponse, ...
	}
	return false, false
}

// failed handles an ErrorResponse. In a simple query the ReadyForQuery
// still follows; in the extended protocol the server skips every message
// up to Sync, so their answers are no longer expected and their effects
// are reverted (see effects.go).
func (t *Tracker) failed(h *entry, body []byte, off int) error {
	switch h.typ {
	case 'Q':
		t.rewind()
		h.ok = h.failed
		t.replay()
		return nil
	case 'F', 'S':
		return nil
	}
	var er pgproto3.ErrorResponse
	decoded := body != nil && er.Decode(body) == nil
	if h.dup != "" && decoded && er.Code == "26000" {
		msg := &pgproto3.ErrorResponse{Severity: er.Severity, SeverityUnlocalized: er.SeverityUnlocalized,
			Code: "42P05", Message: `prepared statement "` + h.dup + `" already exists`}
		from := len(t.outEdits.buf)
		t.outEdits.buf, _ = msg.Encode(t.outEdits.buf)
		t.outEdits.replace(off, 5+len(body), from)
	}
	stale := ""
	if decoded && er.Code == "0A000" && strings.Contains(er.Message, "cached plan must not change result type") {
		stale = h.stmt
	}
	end := 0
	for end < len(t.q) && t.q[end].typ != 'S' {
		end++
	}
	t.copyIn = false // a COPY that fails is over
	t.rewind()
	for _, f := range h.failed {
		f() // for good: the message is answered
	}
	t.q = t.q[:copy(t.q, t.q[end:])]
	t.replay()
	if stale != "" {
		t.srv.MarkStale(stale)
	}
	t.execs = 0
	for _, e := range t.q {
		if e.typ == 'E' || e.typ == 'Q' || e.typ == 'F' {
			t.execs++
		}
	}
	t.settle()
	// Without a Sync sent yet, the server skips what the client sends
	// until one comes.
	t.skipping = len(t.q) == 0
	return nil
}

func appendTag(dst []byte, tag string) []byte {
	dst = append(dst, 'C')
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(tag)+1))
	dst = append(dst, tag...)
	return append(dst, 0)
}

// sessionReset notices a DEALLOCATE ALL or DISCARD ALL inside a longer
// simple query: the server's statements are gone, and so are the client's.
func (t *Tracker) sessionReset(body []byte) {
	tag := bytes.TrimSuffix(body, []byte{0})
	all, discard := bytes.Equal(tag, []byte("DEALLOCATE ALL")), bytes.Equal(tag, []byte("DISCARD ALL"))
	if all || discard {
		// It ran before the messages sent after the query: redo theirs
		// on top of it.
		t.rewind()
		h := &t.q[0]
		reset := []effect{t.srvClear(), t.regClear()}
		h.ok = slices.Concat(h.ok, reset)
		h.failed = slices.Concat(h.failed, reset) // not undone if a later statement fails
		t.replay()
	}
}
