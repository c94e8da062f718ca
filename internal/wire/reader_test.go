package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// relay drains r the way the session relay does and returns the frames seen
// and the bytes forwarded. After every batch it checks that Streaming names
// the message the batch ends inside, if any.
func relay(t *testing.T, r *Reader) (frames []Frame, out []byte, err error) {
	t.Helper()
	return relayReleasing(t, r, false)
}

// relayReleasing is relay, giving the buffer back before each Fill when
// release is set, as the session does before it waits for its client.
func relayReleasing(t *testing.T, r *Reader, release bool) (frames []Frame, out []byte, err error) {
	t.Helper()
	covered := 0 // bytes of the frames seen
	for {
		for {
			f, ok, err := r.Next()
			if err != nil {
				return frames, out, err
			}
			if !ok {
				break
			}
			f.Body = bytes.Clone(f.Body)
			frames = append(frames, f)
			covered += f.Total()
		}
		out = append(out, r.Take()...)
		var inside byte
		if covered > len(out) {
			inside = frames[len(frames)-1].Type
		}
		if got := r.Streaming(); got != inside {
			t.Fatalf("after %d bytes Streaming() = %q, want %q", len(out), got, inside)
		}
		if release {
			r.Release()
			if r.Holding() && r.Buffered() == 0 {
				t.Fatal("Release kept a buffer that held nothing")
			}
		}
		if err := r.Fill(); err != nil {
			return frames, out, err
		}
	}
}

func TestReaderForwardsEveryByteAndSeesEveryMessage(t *testing.T) {
	big := string(bytes.Repeat([]byte("x"), 300))
	stream := bytes.Join([][]byte{
		testutil.Message('Q', "select 1\x00"), testutil.Message('S', ""), testutil.Message('D', big),
		testutil.Message('Z', "I"), testutil.Message('d', big+big), testutil.Message('c', ""),
	}, nil)
	wantTypes := "QSDZdc"
	cases := []struct {
		name    string
		src     io.Reader
		bufSize int
	}{
		{"whole stream, roomy buffer", bytes.NewReader(stream), 4096},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(stream)), 4096},
		{"buffer smaller than some messages", bytes.NewReader(stream), 64},
		{"small buffer and one byte reads", iotest.OneByteReader(bytes.NewReader(stream)), 64},
		{"half reads", iotest.HalfReader(bytes.NewReader(stream)), 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.src, tc.bufSize, 1<<20)
			frames, out, err := relay(t, r)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("err = %v, want EOF", err)
			}
			if !bytes.Equal(out, stream) {
				t.Fatalf("forwarded %d bytes, want %d identical bytes", len(out), len(stream))
			}
			var types []byte
			for _, f := range frames {
				types = append(types, f.Type)
			}
			if string(types) != wantTypes {
				t.Fatalf("types = %q, want %q", types, wantTypes)
			}
			if frames[3].Body == nil || string(frames[3].Body) != "I" {
				t.Fatalf("ReadyForQuery body = %q, want I", frames[3].Body)
			}
			if frames[4].Len != 600 {
				t.Fatalf("large CopyData Len = %d, want 600", frames[4].Len)
			}
			if tc.bufSize < 600 && frames[4].Body != nil {
				t.Fatalf("a message larger than the buffer must be streamed with a nil body")
			}
		})
	}
}

func TestReaderRefusesBadLengthsBeforeReadingTheBody(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		check func(error) bool
	}{
		{"length below four", []byte{'Q', 0, 0, 0, 3}, func(err error) bool { return errors.Is(err, ErrMalformed) }},
		{"length over the limit", []byte{'Q', 0x7f, 0xff, 0xff, 0xff}, func(err error) bool {
			var tl *ErrTooLarge
			return errors.As(err, &tl) && tl.Type == 'Q' && tl.Limit == 1000
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.input), 128, 1000)
			_, _, err := relay(t, r)
			if !tc.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

func TestReadMessageReturnsWholeSmallMessagesAndRefusesBigOnes(t *testing.T) {
	input := append(testutil.Message('p', "secret\x00"), testutil.Message('p', string(bytes.Repeat([]byte("y"), 200)))...)
	r := NewReader(iotest.OneByteReader(bytes.NewReader(input)), 64, 1<<20)
	typ, body, err := r.ReadMessage()
	if err != nil || typ != 'p' || string(body) != "secret\x00" {
		t.Fatalf("got %q %q %v", typ, body, err)
	}
	_, _, err = r.ReadMessage()
	var tl *ErrTooLarge
	if !errors.As(err, &tl) {
		t.Fatalf("err = %v, want ErrTooLarge for a message bigger than the buffer", err)
	}
}

func TestInMessageTellsWhetherTheReaderStoppedBetweenMessages(t *testing.T) {
	r := NewReader(bytes.NewReader(append(testutil.Message('Z', "I"), 'D', 0)), 64, 1<<20)
	if err := r.Fill(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.Next(); !ok {
		t.Fatal("want the ReadyForQuery frame")
	}
	r.Take()
	if !r.InMessage() {
		t.Fatal("two bytes of the next header are buffered: InMessage must be true")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(bytes.Join([][]byte{testutil.Message('Q', "select 1\x00"), testutil.Message('Z', "I")}, nil), 64)
	f.Add([]byte{'d', 0, 0, 1, 0, 1, 2, 3}, 16)
	f.Add([]byte{'X', 0, 0, 0, 1}, 100)
	f.Add(bytes.Join([][]byte{testutil.Message('Q', "select 1\x00"), testutil.Message('P', string(make([]byte, 20000)))}, nil), 3)
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		whole, release := size%2 == 0, size%3 == 0
		size = 16 + (size&0xffff)%4096
		if release {
			size = DefaultBufferSize // the only size Release gives back
		}
		r := NewReader(iotest.HalfReader(bytes.NewReader(data)), size, 1<<16)
		if whole {
			r.SetWhole(func(typ byte) bool { return typ == 'P' || typ == 'B' })
		}
		frames, out, err := relayReleasing(t, r, release)
		if !bytes.Equal(out, data[:len(out)]) {
			t.Fatal("forwarded bytes differ from the input")
		}
		total := 0
		for _, fr := range frames {
			total += fr.Total()
			if fr.Body != nil && len(fr.Body) != fr.Len {
				t.Fatalf("body of %d bytes for Len %d", len(fr.Body), fr.Len)
			}
			if whole && (fr.Type == 'P' || fr.Type == 'B') && fr.Body == nil {
				t.Fatalf("a whole-typed %q message was streamed", fr.Type)
			}
		}
		// Every forwarded byte belongs to a seen frame; the last frame may
		// still be streaming when input ends.
		if len(out) > total {
			t.Fatalf("forwarded %d bytes but frames cover %d", len(out), total)
		}
		if errors.Is(err, io.EOF) && !r.InMessage() && total != len(out) {
			t.Fatalf("clean end but frames cover %d of %d bytes", total, len(out))
		}
	})
}

func TestPeekTypeWaitsForTheNextMessageWithoutConsumingIt(t *testing.T) {
	r := NewReader(iotest.OneByteReader(bytes.NewReader(testutil.Message('Q', "select 1\x00"))), 64, 1<<20)
	typ, err := r.PeekType()
	if err != nil || typ != 'Q' {
		t.Fatalf("PeekType = %q, %v", typ, err)
	}
	typ, body, err := r.ReadMessage()
	if err != nil || typ != 'Q' || string(body) != "select 1\x00" {
		t.Fatalf("the peeked message must still be readable whole: %q %q %v", typ, body, err)
	}
}

func TestWholeMessagesGrowTheBufferAndItShrinksBack(t *testing.T) {
	big := string(bytes.Repeat([]byte("q"), 500))
	huge := string(bytes.Repeat([]byte("d"), 2000))
	stream := bytes.Join([][]byte{testutil.Message('S', ""), testutil.Message('P', big), testutil.Message('d', huge), testutil.Message('S', "")}, nil)
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), 64, 1<<20)
	r.SetWhole(func(typ byte) bool { return typ == 'P' })
	frames, out, err := relay(t, r)
	if !errors.Is(err, io.EOF) || !bytes.Equal(out, stream) {
		t.Fatalf("err %v; forwarded %d of %d bytes", err, len(out), len(stream))
	}
	if len(frames) != 4 || string(frames[1].Body) != big {
		t.Fatalf("the Parse must arrive whole: %d frames, body %d bytes", len(frames), len(frames[1].Body))
	}
	if frames[2].Body != nil {
		t.Fatal("CopyData is not whole-typed: it must still be streamed")
	}
	if len(r.buf) != 64 {
		t.Fatalf("buffer is %d bytes after the big message; want it back at 64", len(r.buf))
	}
}

func TestFrameOffsetsPointIntoTheTakenSpan(t *testing.T) {
	stream := bytes.Join([][]byte{testutil.Message('P', "a\x00b\x00\x00\x00"), testutil.Message('B', "xyz"), testutil.Message('S', "")}, nil)
	r := NewReader(bytes.NewReader(stream), 4096, 1<<20)
	if err := r.Fill(); err != nil {
		t.Fatal(err)
	}
	var frames []Frame
	for {
		f, ok, _ := r.Next()
		if !ok {
			break
		}
		frames = append(frames, f)
	}
	span := r.Take()
	for _, f := range frames {
		if span[f.Off] != f.Type || !bytes.Equal(span[f.Off+5:f.Off+f.Total()], f.Body) {
			t.Fatalf("frame %q at %d does not match the span", f.Type, f.Off)
		}
	}
}
