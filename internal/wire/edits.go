package wire

// Edits replaces byte ranges of a span: a batch of messages is relayed as
// one span, and only the few messages that change are spliced, so an
// unchanged batch costs no copy. Callers append replacement bytes to Buf,
// then call Replace.
type Edits struct {
	list []edit
	Buf  []byte // replacement bytes of every edit, back to back
	out  []byte
}

type edit struct {
	off, n   int // range in the span
	from, to int // replacement in Buf
}

// Reset forgets every edit.
func (e *Edits) Reset() {
	e.list = e.list[:0]
	e.Buf = e.Buf[:0]
}

// Any reports whether there are edits.
func (e *Edits) Any() bool { return len(e.list) > 0 }

// Replace records that span[off:off+n] becomes the bytes appended to Buf
// since from. Edits must come in span order.
func (e *Edits) Replace(off, n, from int) {
	e.list = append(e.list, edit{off: off, n: n, from: from, to: len(e.Buf)})
}

// ReplaceWith records that span[off:off+n] becomes out.
func (e *Edits) ReplaceWith(off, n int, out []byte) {
	from := len(e.Buf)
	e.Buf = append(e.Buf, out...)
	e.Replace(off, n, from)
}

// Apply returns span with the edits made, or span itself when there are
// none. The result is valid until the next Apply.
func (e *Edits) Apply(span []byte) []byte {
	if len(e.list) == 0 {
		return span
	}
	out := e.out[:0]
	at := 0
	for _, ed := range e.list {
		out = append(out, span[at:ed.off]...)
		out = append(out, e.Buf[ed.from:ed.to]...)
		at = ed.off + ed.n
	}
	e.out = append(out, span[at:]...)
	return e.out
}
