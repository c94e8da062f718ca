package stmt

// edits replaces byte ranges of a batch: a batch is forwarded as one span,
// and only the few messages that change are spliced, so an unchanged batch
// costs no copy.
type edits struct {
	list []edit
	buf  []byte // replacement bytes of every edit, back to back
}

type edit struct {
	off, n   int // range in the span
	from, to int // replacement in buf
}

func (e *edits) reset() {
	e.list = e.list[:0]
	e.buf = e.buf[:0]
}

// replace records that span[off:off+n] becomes the bytes appended to e.buf
// since from.
func (e *edits) replace(off, n, from int) {
	e.list = append(e.list, edit{off: off, n: n, from: from, to: len(e.buf)})
}

// apply returns span with the edits made, built in out (reused). There
// must be edits: out must never alias span.
func (e *edits) apply(span, out []byte) []byte {
	out = out[:0]
	at := 0
	for _, ed := range e.list {
		out = append(out, span[at:ed.off]...)
		out = append(out, e.buf[ed.from:ed.to]...)
		at = ed.off + ed.n
	}
	return append(out, span[at:]...)
}
