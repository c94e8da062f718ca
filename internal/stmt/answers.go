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
func (t *Tracker) BeginAnswers() { t.outEdits.Reset() }

// ReplaceAnswer replaces the server message at off (n bytes) of the
// batch being matched with out, for the caller's own rewrites.
func (t *Tracker) ReplaceAnswer(off, n int, out []byte) {
	t.outEdits.ReplaceWith(off, n, out)
}

// ApplyAnswers returns the batch to send to the client.
func (t *Tracker) ApplyAnswers(span []byte) []byte {
	return t.outEdits.Apply(span)
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
		return desync("%w: %q with nothing pending", typ, 0)
	}
	h := &t.q[0]
	if typ == 'E' {
		return t.failed(h, body, off)
	}
	done, ok := answers(h, typ)
	if !ok {
		return desync("%w: %q answering %q", typ, h.typ)
	}
	n := 5 + len(body)
	if body == nil && (h.hide || done && h.get().answer != nil) {
		// Only whole messages can be dropped or replaced (the reader
		// reads the ones pgvalve hides whole); never cut one in two.
		return desync("%w: %q to rewrite is bigger than the read buffer", typ, 0)
	}
	switch typ {
	case 'G':
		t.copyStarted()
		h = &t.q[0]
	case 'C':
		t.completed(h, body, off, n)
	case 'Z':
		t.status = '?'
		if len(body) == 1 {
			t.status = body[0]
		}
		if t.status == 'I' && len(t.portals) > 0 {
			t.endPortals(h.grp)
		}
	case 't', 'T', 'n':
		if x := h.x; x != nil && x.describes != "" {
			x.shape = foldShape(max(x.shape, fnvOffset), typ, body)
			switch typ {
			case 't':
				x.desc = bytes.Clone(body)
			case 'T':
				x.rows = true
			}
		}
	}
	switch {
	case h.hide:
		t.outEdits.Replace(off, n, len(t.outEdits.Buf))
	case done && h.get().answer != nil:
		t.outEdits.ReplaceWith(off, n, h.x.answer)
	}
	if done {
		switch x := h.get(); {
		case x.describes != "":
			t.described(x)
		case x.closes != "":
			t.srv.closed(x.closes)
		}
		t.pop()
	}
	return nil
}

// desync is ErrDesync over the answer typ (and what it answered, when
// the format names it): apart from Server, whose frame its arguments
// would grow (see endPortals).
//
//go:noinline
func desync(format string, typ, answering byte) error {
	if answering == 0 {
		return fmt.Errorf(format, ErrDesync, typ)
	}
	return fmt.Errorf(format, ErrDesync, typ, answering)
}

// endPortals forgets every portal bound up to Sync group grp: they ended
// with its transaction. Apart from Server, whose frame a map iterator
// would grow: the server side's new goroutine per link then grew its
// stack on every transaction.
//
//go:noinline
func (t *Tracker) endPortals(grp int) {
	for name, p := range t.portals {
		if p.grp <= grp {
			delete(t.portals, name)
		}
	}
}

// described records the shape a hidden Describe learned.
func (t *Tracker) described(x *extra) {
	shape := shapeDone(x.shape)
	t.srv.setShape(x.describes, shape)
	if st := x.shapeOf; st != nil && st.shape == 0 {
		st.shape, st.desc, st.rows = shape, x.desc, x.rows
	}
}

// completed handles a CommandComplete: the tag the client sees, and what
// the command did to prepared statements.
func (t *Tracker) completed(h *entry, body []byte, off, n int) {
	x := h.get()
	tag := x.tag
	ours := false
	if h.typ == 'Q' && !x.reset {
		t.sessionReset(body)
		ranTag, hide := "", false
		if len(x.items) > 0 { // most queries: no call, no frame to grow the stack
			ranTag, hide = t.queryRan(h)
		}
		if hide {
			t.outEdits.Replace(off, n, len(t.outEdits.Buf))
			return
		}
		if ranTag != "" {
			tag, ours = ranTag, true
		}
	}
	if tag != "" {
		from := len(t.outEdits.Buf)
		t.outEdits.Buf = appendTag(t.outEdits.Buf, tag)
		t.outEdits.Replace(off, n, from)
	}
	switch string(body) {
	case "DO\x00", "CALL\x00":
		if !ours {
			// Code pgvalve cannot see into may have run DEALLOCATE.
			t.srv.Forget()
		}
	}
}

// pop drops the answered head. The queue slides along its array, back to
// the start once empty, so popping copies nothing.
func (t *Tracker) pop() {
	t.q[0] = entry{} // no references kept from the array
	t.q = t.q[1:]
	if len(t.q) == 0 {
		t.q = t.qbase[:0]
	}
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
	var er pgproto3.ErrorResponse
	decoded := body != nil && er.Decode(body) == nil
	lost := decoded && t.lostStatement(h, &er)
	if decoded {
		t.rewriteError(h, &er, off, 5+len(body))
	}
	switch h.typ {
	case 'Q':
		t.rewind()
		h.ok = h.failed
		t.replay()
		return nil
	case 'F', 'S':
		return nil
	}
	stale := ""
	if decoded && er.Code == "0A000" && er.Message == staleMessage {
		stale = h.stmt
	}
	if lost {
		// As if the client had deallocated it, which its error says.
		h.failed = append(h.failed, t.regDel(h.name))
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
	if lost {
		t.srv.Forget()
	}
	t.settle()
	// Without a Sync sent yet, the server skips what the client sends
	// until one comes.
	t.skipping = len(t.q) == 0
	return nil
}

// lostStatement reports whether the server says a statement pgvalve had
// prepared there is gone: something pgvalve could not see (DEALLOCATE in
// a function) dropped it. The books were wrong; they are forgotten, so
// every statement is prepared afresh on its next use.
func (t *Tracker) lostStatement(h *entry, er *pgproto3.ErrorResponse) bool {
	return (h.typ == 'B' || h.typ == 'D') && h.stmt != "" && er.Code == "26000" &&
		strings.Contains(er.Message, `"`+h.stmt+`"`)
}

// rewriteError shows the client the error PostgreSQL would have sent it:
// the one pgvalve arranged (errAs), or the server's under the client's
// name for the statement.
func (t *Tracker) rewriteError(h *entry, er *pgproto3.ErrorResponse, off, n int) {
	code, msg := "", ""
	switch {
	case h.get().errAs != nil && er.Code == h.x.errAs.when && strings.Contains(er.Message, h.x.errAs.about):
		code, msg = h.x.errAs.code, h.x.errAs.msg
	case h.stmt != "" && strings.Contains(er.Message, `"`+h.stmt+`"`):
		// The server named the statement as it knows it.
		code, msg = er.Code, strings.ReplaceAll(er.Message, `"`+h.stmt+`"`, `"`+h.name+`"`)
	case renamedIn(h.get().renames, er.Message):
		code, msg = er.Code, er.Message
		for _, r := range h.x.renames {
			msg = strings.ReplaceAll(msg, `"`+r[0]+`"`, `"`+r[1]+`"`)
		}
	default:
		return
	}
	out := &pgproto3.ErrorResponse{Severity: er.Severity, SeverityUnlocalized: er.SeverityUnlocalized, Code: code, Message: msg}
	from := len(t.outEdits.Buf)
	t.outEdits.Buf, _ = out.Encode(t.outEdits.Buf)
	t.outEdits.Replace(off, n, from)
}

// queryRan makes, for good, the effects of a statement of a simple query
// that changes the client's statements once PostgreSQL says it ran (they
// stay even if a later statement of the query fails, or its transaction
// rolls back), and returns the tag the client sees for this
// CommandComplete ("" for the server's), or hide for pgvalve's own.
func (t *Tracker) queryRan(h *entry) (tag string, hide bool) {
	x := h.x
	if x == nil || len(x.items) == 0 {
		return "", false
	}
	index := x.done
	x.done++
	for _, it := range x.items {
		if it.index != index {
			continue
		}
		switch it.kind {
		case itemDealloc:
			ran := []effect{t.regDel(it.name)}
			if it.held {
				ran = append(ran, t.srvDel(it.server))
			}
			t.ranInQuery(ran)
			return "DEALLOCATE", false
		case itemPrepare:
			ran := []effect{t.regSet(it.name, it.st)}
			if it.held {
				ran = append(ran, t.prepared(it.server))
			}
			t.ranInQuery(ran)
			return "PREPARE", false
		default:
			t.ranInQuery([]effect{t.prepared(it.server)})
			return "", true
		}
	}
	return "", false
}

// prepared records a copy a SQL PREPARE made: of a shape not yet known.
func (t *Tracker) prepared(name string) effect {
	t.srv.closed(name)
	return t.srvAdd(name)
}

// renamedIn reports whether msg names one of the server names.
func renamedIn(renames [][2]string, msg string) bool {
	for _, r := range renames {
		if strings.Contains(msg, `"`+r[0]+`"`) {
			return true
		}
	}
	return false
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
		t.ranInQuery([]effect{t.srvClear(), t.regClear()})
	}
}

// ranInQuery adds to the simple query at the head the effects of one of
// its statements that ran: they stay whether or not a later statement
// fails, and the messages sent after the query are redone on top of them.
func (t *Tracker) ranInQuery(effs []effect) {
	t.rewind()
	h := &t.q[0]
	h.ok = slices.Concat(h.ok, effs)
	h.failed = slices.Concat(h.failed, effs)
	t.replay()
}
