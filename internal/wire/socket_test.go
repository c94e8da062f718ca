package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestNewSocketWrapsOnlyPlainSockets(t *testing.T) {
	c, _ := testutil.LoopbackPair(t)
	if _, ok := NewSocket(c).(*Socket); !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if got := NewSocket(p1); got != io.ReadWriter(p1) {
		t.Fatalf("a net.Pipe became %T; want the pipe itself", got)
	}
}

// Bytes go both ways intact, whatever their size: small messages, and
// writes larger than the socket buffers, which must wait for the peer to
// read (the EAGAIN path) while the peer writes at the same time.
func TestSocketCarriesBytesBothWays(t *testing.T) {
	for _, size := range []int{1, 5, 16 << 10, 4 << 20} {
		c, peer := testutil.LoopbackPair(t)
		s := NewSocket(c)
		out := bytes.Repeat([]byte("pgvalve!"), size/8+1)[:size]
		in := bytes.Repeat([]byte("postgres"), size/8+1)[:size]
		var wg sync.WaitGroup
		var peerGot []byte
		var peerErr, peerWriteErr error
		wg.Add(2)
		go func() { defer wg.Done(); peerGot, peerErr = io.ReadAll(io.LimitReader(peer, int64(size))) }()
		go func() { defer wg.Done(); _, peerWriteErr = peer.Write(in) }()
		n, err := s.Write(out)
		if err != nil || n != size {
			t.Fatalf("size %d: Write = %d, %v", size, n, err)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("size %d: read: %v", size, err)
		}
		wg.Wait()
		if peerErr != nil || peerWriteErr != nil {
			t.Fatalf("size %d: peer: %v, %v", size, peerErr, peerWriteErr)
		}
		if !bytes.Equal(got, in) || !bytes.Equal(peerGot, out) {
			t.Fatalf("size %d: bytes changed on the way", size)
		}
	}
}

func TestSocketReportsEOFDeadlinesAndClose(t *testing.T) {
	t.Run("the peer closes", func(t *testing.T) {
		c, peer := testutil.LoopbackPair(t)
		peer.Close()
		if _, err := NewSocket(c).Read(make([]byte, 8)); err != io.EOF {
			t.Fatalf("Read = %v, want io.EOF", err)
		}
	})
	t.Run("a read deadline passes", func(t *testing.T) {
		c, _ := testutil.LoopbackPair(t)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := NewSocket(c).Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want a deadline error", err)
		}
	})
	t.Run("a write blocked on a peer that reads nothing is woken by a deadline", func(t *testing.T) {
		c, _ := testutil.LoopbackPair(t)
		big := make([]byte, 64<<20)
		// As pgvalve unblocks a relay writing to a client that stopped reading.
		time.AfterFunc(200*time.Millisecond, func() { _ = c.SetWriteDeadline(time.Unix(1, 0)) })
		n, err := NewSocket(c).Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 64<<20 {
			t.Fatalf("Write = %d, %v; want part written, then a deadline error", n, err)
		}
	})
	t.Run("the connection is closed during a read", func(t *testing.T) {
		c, _ := testutil.LoopbackPair(t)
		time.AfterFunc(20*time.Millisecond, func() { c.Close() })
		if _, err := NewSocket(c).Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read = %v, want net.ErrClosed", err)
		}
	})
	t.Run("the peer resets the connection", func(t *testing.T) {
		c, peer := testutil.LoopbackPair(t)
		_ = peer.(*net.TCPConn).SetLinger(0)
		peer.Close()
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = NewSocket(c).Write([]byte("x"))
			time.Sleep(time.Millisecond)
		}
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Fatalf("Write after a reset = %v, want a *net.OpError", err)
		}
	})
}

// Two goroutines writing at once (a server handed to the next client while
// the last one's write call returns) each get their bytes out whole.
func TestSocketSerializesConcurrentWrites(t *testing.T) {
	c, peer := testutil.LoopbackPair(t)
	s := NewSocket(c)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte('a' + w)}, 100)
			for range each {
				if _, err := s.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got, err := io.ReadAll(io.LimitReader(peer, writers*each*100))
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(got); i += 100 {
		if chunk := got[i : i+100]; !bytes.Equal(chunk, bytes.Repeat(chunk[:1], 100)) {
			t.Fatalf("writes interleaved at byte %d", i)
		}
	}
}

// A request/answer round trip over loopback, the relay's rhythm, through
// net.Conn and through Socket. The echo peer is plain net.Conn in both.
// The gain under load comes mostly from the scheduler (no P hand-offs, no
// sysmon polling), which one round trip at a time barely shows: pgbench
// numbers are in BENCHMARKS.md.
func BenchmarkSocketRoundTrip(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) io.ReadWriter
	}{
		{"net.Conn", func(c net.Conn) io.ReadWriter { return c }},
		{"wire.Socket", NewSocket},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				peer, err := ln.Accept()
				if err != nil {
					return
				}
				defer peer.Close()
				_, _ = io.Copy(peer, peer)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rw := tc.wrap(c)
			msg := resultStream(1, 1)
			buf := make([]byte, len(msg))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rw.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rw, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A reader over a socket that gives its buffer back between messages
// still sees every byte, in order, a message larger than the buffer
// included, and holds no buffer after Release.
func TestAReleasingReaderOverASocketSeesEveryMessage(t *testing.T) {
	c, peer := testutil.LoopbackPair(t)
	r := NewReader(NewSocket(c), DefaultBufferSize, 1<<20)
	r.SetWhole(func(byte) bool { return true })
	big := string(bytes.Repeat([]byte("b"), 3*DefaultBufferSize))
	msgs := []string{"one\x00", big, "three\x00"}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for _, m := range msgs {
			_, _ = peer.Write(testutil.Message('Q', m))
			time.Sleep(10 * time.Millisecond) // the reader parks between them
		}
	}()
	defer func() { <-wrote }()
	for i, want := range msgs {
		r.Release()
		if r.Holding() {
			t.Fatalf("message %d: Release kept the buffer of an empty reader", i)
		}
		typ, body, err := r.ReadMessage()
		if err != nil || typ != 'Q' || string(body) != want {
			t.Fatalf("message %d: got %q of %d bytes (%v), want %d bytes", i, typ, len(body), err, len(want))
		}
	}
}
