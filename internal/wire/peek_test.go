package wire

import (
	"net"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// waitPeek polls Peek until it reports want (the kernel delivers a close
// asynchronously) or a few seconds pass.
func waitPeek(t *testing.T, c net.Conn, want PeekState) {
	t.Helper()
	var got PeekState
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got, _, _ = PeekInto(c, make([]byte, 5)); got == want {
			return
		}
	}
	t.Fatalf("Peek = %d, want %d", got, want)
}

func TestPeekIntoTellsQuietDataAndCloseApart(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(peer net.Conn)
		want PeekState
	}{
		{"quiet", func(net.Conn) {}, PeekQuiet},
		{"data waiting", func(p net.Conn) { _, _ = p.Write([]byte("X")) }, PeekData},
		{"closed", func(p net.Conn) { _ = p.Close() }, PeekClosed},
		// A client that sends Terminate and hangs up: the close is behind
		// unread bytes, which a recv peek alone would report as data.
		{"closed behind unread bytes", func(p net.Conn) { _, _ = p.Write([]byte("X\x00\x00\x00\x04")); _ = p.Close() }, PeekClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "closed behind unread bytes" && !peekSeesCloseBehindData {
				t.Skip("this system's Peek cannot see a close behind unread bytes (no POLLRDHUP)")
			}
			c, s := testutil.LoopbackPair(t)
			tc.do(c)
			waitPeek(t, s, tc.want)
			if tc.want == PeekData {
				buf := make([]byte, 1)
				if n, err := s.Read(buf); n != 1 || err != nil || buf[0] != 'X' {
					t.Fatalf("Peek consumed the byte: read %d %q %v", n, buf[:n], err)
				}
			}
		})
	}
}

// Peek alone (one recv) tells an idle peer that closed from one that did
// not, and never consumes.
func TestPeekSeesAPlainClose(t *testing.T) {
	c, s := testutil.LoopbackPair(t)
	if st, err := Peek(s); st != PeekQuiet || err != nil {
		t.Fatalf("open and quiet: Peek = %d, %v", st, err)
	}
	_ = c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if st, _ := Peek(s); st == PeekClosed {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("closed: Peek = %d", st)
		}
	}
}

// A Peeker sees what Peek sees, look after look, and allocates nothing.
func TestPeekerSeesQuietThenDataThenCloseWithoutAllocating(t *testing.T) {
	client, server := testutil.LoopbackPair(t)
	pk := NewPeeker(client)
	if st, err := pk.Peek(); st != PeekQuiet {
		t.Fatalf("idle: Peek = %d (%v), want quiet", st, err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = pk.Peek() }); allocs != 0 {
		t.Fatalf("Peek allocates %.0f times, want none", allocs)
	}
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	peekerSees(t, pk, PeekData)
	server.Close()
	buf := make([]byte, 1)
	if _, err := client.Read(buf); err != nil {
		t.Fatal(err)
	}
	peekerSees(t, pk, PeekClosed)
}

// peekerSees polls pk until it reports want (the kernel delivers bytes and
// a close asynchronously) or a few seconds pass.
func peekerSees(t *testing.T, pk *Peeker, want PeekState) {
	t.Helper()
	var got PeekState
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got, _ = pk.Peek(); got == want {
			return
		}
	}
	t.Fatalf("Peek = %d, want %d", got, want)
}
