// Package wire frames PostgreSQL protocol messages on the hot path without
// decoding them, checks their sizes, and builds the few messages pgvalve
// writes itself (errors, notices, startup replies).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultBufferSize matches PostgreSQL's own socket buffer (PQ_RECV_BUFFER_SIZE
// in pqcomm.c is 8 KiB); twice that lets a typical batch of small messages
// travel in one read and one write.
const DefaultBufferSize = 16 << 10

// headerLen is the type byte plus the int32 length of a regular message.
const headerLen = 5

// Frame is one message header seen by Reader.Next.
type Frame struct {
	Type byte
	// Len is the body length (the wire length field minus its own 4 bytes).
	Len int
	// Body is the message body when the whole message is buffered; nil when
	// the message is larger than the buffer and is being streamed through.
	// It is valid only until the next call to Fill.
	Body []byte
	// Off is where the message starts in the bytes the next Take returns.
	Off int
}

// Total is the message's size on the wire, header included.
func (f Frame) Total() int { return headerLen + f.Len }

// ErrTooLarge is returned for a message whose declared length exceeds the
// reader's limit.
type ErrTooLarge struct {
	Type  byte
	Len   int
	Limit int
}

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("message %q of %d bytes exceeds the limit of %d bytes", e.Type, e.Len, e.Limit)
}

// ErrMalformed is returned for a length field smaller than itself.
var ErrMalformed = errors.New("malformed message length")

// Reader frames messages from a stream into a fixed buffer, so memory per
// connection is bounded whatever the peer declares. Messages that fit are
// exposed whole; larger ones are streamed through in pieces.
//
// The buffer holds three regions: buf[r:scan] has been scanned by Next and
// is ready for Take; buf[scan:w] is read but not scanned.
type Reader struct {
	src     io.Reader
	buf     []byte
	r, scan int
	w       int
	stream  int  // bytes of a large message still to pass through unframed
	streamT byte // that message's type
	maxLen  int  // largest accepted message, header included
	size    int  // the buffer's usual size; it grows only for whole messages
	// whole says which message types must be seen whole even when larger
	// than the buffer (they are decoded); others are streamed.
	whole func(typ byte) bool
}

// NewReader returns a Reader with a buffer of size bytes that refuses
// messages larger than maxLen bytes (header included). The buffer is taken
// at the first Fill, not before.
func NewReader(src io.Reader, size, maxLen int) *Reader {
	if size < 64 {
		size = 64
	}
	return &Reader{src: src, maxLen: maxLen, size: size}
}

// Release gives the buffer back to a pool shared by every reader when it
// holds nothing unread, so that a connection idle between messages holds
// no buffer; the next Fill takes one again. Any Body or Take slice from
// before is invalid from then on: another connection may be reading into
// that memory. Only buffers of DefaultBufferSize are shared; a reader of
// another size keeps its own.
func (r *Reader) Release() {
	if r.buf == nil || r.r != r.w || r.size != DefaultBufferSize {
		return
	}
	if len(r.buf) == DefaultBufferSize {
		putBuf(r.buf) // a grown buffer is dropped instead
	}
	r.buf = nil
	r.r, r.scan, r.w = 0, 0, 0
}

// Holding reports whether the reader holds a buffer now.
func (r *Reader) Holding() bool { return r.buf != nil }

// SetWhole makes messages of the types whole reports arrive whole: the
// buffer grows for them, up to the reader's message limit, and shrinks back
// once they are taken.
func (r *Reader) SetWhole(whole func(typ byte) bool) { r.whole = whole }

// Reset points the reader at a new source and drops anything buffered.
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.r, r.scan, r.w, r.stream = 0, 0, 0, 0
}

// Buffered reports how many read bytes are not yet taken.
func (r *Reader) Buffered() int { return r.w - r.r }

// Scanned reports how many bytes Take would return now.
func (r *Reader) Scanned() int { return r.scan - r.r }

// Streaming returns the type of the message being streamed through, whose
// header Next has returned but whose last bytes it has not passed yet; 0
// when none. What was scanned then ends inside that message.
func (r *Reader) Streaming() byte {
	if r.stream > 0 {
		return r.streamT
	}
	return 0
}

// StreamLeft reports how many bytes of the message being streamed through
// are still to come (see Streaming).
func (r *Reader) StreamLeft() int { return r.stream }

// InMessage reports whether the reader stopped inside a message: bytes read
// but not scanned, or a large message not yet fully streamed.
func (r *Reader) InMessage() bool { return r.stream > 0 || r.w > r.scan }

// Next scans the next message in the buffer. ok is false when more input is
// needed: Take what was scanned, then Fill. For a message too big for the
// buffer, Next returns its frame with a nil Body as soon as the header is
// seen, and later calls pass the rest of its bytes through before framing
// resumes.
func (r *Reader) Next() (f Frame, ok bool, err error) {
	if r.stream > 0 {
		n := min(r.stream, r.w-r.scan)
		r.scan += n
		r.stream -= n
		if r.stream > 0 {
			return Frame{}, false, nil
		}
	}
	if r.w-r.scan < headerLen {
		return Frame{}, false, nil
	}
	typ := r.buf[r.scan]
	l := int(binary.BigEndian.Uint32(r.buf[r.scan+1:]))
	if l < 4 {
		return Frame{}, false, ErrMalformed
	}
	total := 1 + l
	if total > r.maxLen {
		return Frame{}, false, &ErrTooLarge{Type: typ, Len: total, Limit: r.maxLen}
	}
	if r.scan+total <= r.w {
		f = Frame{Type: typ, Len: l - 4, Body: r.buf[r.scan+headerLen : r.scan+total], Off: r.scan - r.r}
		r.scan += total
		return f, true, nil
	}
	if total > len(r.buf) {
		if r.whole != nil && r.whole(typ) {
			r.grow(total)
			return Frame{}, false, nil
		}
		f = Frame{Type: typ, Len: l - 4, Off: r.scan - r.r}
		r.stream, r.streamT = total-(r.w-r.scan), typ
		r.scan = r.w
		return f, true, nil
	}
	return Frame{}, false, nil
}

// grow makes room for a whole message of n bytes at the scan position.
func (r *Reader) grow(n int) {
	buf := make([]byte, (r.scan-r.r)+n)
	copy(buf, r.buf[r.r:r.w])
	r.w -= r.r
	r.scan -= r.r
	r.r = 0
	r.buf = buf
}

// PeekType waits until the next message's first byte is buffered and
// returns it without scanning the message. Everything scanned must have
// been taken.
func (r *Reader) PeekType() (byte, error) {
	for r.stream == 0 && r.w == r.scan {
		if err := r.Fill(); err != nil {
			return 0, err
		}
	}
	if r.stream > 0 {
		panic("wire: PeekType inside a streamed message")
	}
	return r.buf[r.scan], nil
}

// Take returns the scanned bytes and consumes them. The slice is valid only
// until the next call to Fill.
func (r *Reader) Take() []byte {
	s := r.buf[r.r:r.scan]
	r.r = r.scan
	return s
}

// Fill reads more input. It compacts the buffer first, so it must only be
// called once everything scanned has been taken.
func (r *Reader) Fill() error {
	if r.r != r.scan {
		panic("wire: Fill called with scanned bytes not taken")
	}
	if r.buf == nil {
		return r.fillEmpty()
	}
	if len(r.buf) > r.size && r.w == r.r {
		// A whole large message has gone and nothing is pending: return to
		// the usual size.
		r.buf = nil
		return r.fillEmpty()
	} else if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.w = n
		r.r, r.scan = 0, 0
	}
	if r.w == len(r.buf) {
		// Unreachable: a partial message that fits is never larger than the
		// buffer, and a larger one is streamed.
		panic("wire: buffer full")
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// fillEmpty reads into a buffer taken for the read. From a Socket, the
// buffer is taken only once bytes are there: the read waits holding none.
func (r *Reader) fillEmpty() error {
	r.r, r.scan, r.w = 0, 0, 0
	if s, ok := r.src.(*Socket); ok && r.size == DefaultBufferSize {
		buf, n, err := s.readPooled()
		r.buf, r.w = buf, n
		return err
	}
	if r.size == DefaultBufferSize {
		r.buf = getBuf()
	} else {
		r.buf = make([]byte, r.size)
	}
	return r.Fill()
}

// ReadMessage reads one whole message, filling as needed, and consumes it.
// It is for the startup and auth phases, where messages are small: a message
// larger than the buffer is refused with ErrTooLarge. The body is valid only
// until the next call on the reader.
func (r *Reader) ReadMessage() (typ byte, body []byte, err error) {
	for {
		f, ok, err := r.Next()
		if err != nil {
			return 0, nil, err
		}
		if ok {
			if f.Body == nil {
				return 0, nil, &ErrTooLarge{Type: f.Type, Len: f.Total(), Limit: len(r.buf)}
			}
			r.Take()
			return f.Type, f.Body, nil
		}
		if err := r.Fill(); err != nil {
			return 0, nil, err
		}
	}
}
