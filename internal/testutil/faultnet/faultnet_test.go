package faultnet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// target is a loopback server for the relay to forward to. Each accepted
// connection is handled by handle; every goroutine ends when the test does.
func target(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func relay(t *testing.T, to string) *Relay {
	t.Helper()
	r, err := New(to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func dial(t *testing.T, r *Relay) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within d; it returns the error
// of the read (a timeout when the relay holds the bytes).
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestARelayForwardsBothWays(t *testing.T) {
	r := relay(t, target(t, echo))
	c := dial(t, r)
	if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if r.Conns() != 1 {
		t.Fatalf("Conns() = %d, want 1", r.Conns())
	}
}

func TestARoundRobinRelaySendsEachNewConnectionToTheNextTarget(t *testing.T) {
	var names []string
	for _, name := range []string{"a", "b", "c"} {
		names = append(names, target(t, func(c net.Conn) { _, _ = c.Write([]byte(name)); _, _ = io.Copy(io.Discard, c) }))
	}
	r, err := NewRoundRobin(names...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var got []byte
	for range 6 {
		c := dial(t, r)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b[0])
	}
	if string(got) != "abcabc" {
		t.Fatalf("connections went to %q; want abcabc", got)
	}
}

func TestAPausedRelayHoldsBytesUntilResumed(t *testing.T) {
	r := relay(t, target(t, echo))
	c := dial(t, r)
	if _, err := roundTrip(c, "warm", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	_, err := roundTrip(c, "held", 100*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a paused relay let bytes through: %v", err)
	}
	// A connection opened while paused stalls too.
	c2 := dial(t, r)
	if _, err := roundTrip(c2, "new", 100*time.Millisecond); err == nil {
		t.Fatal("a new connection got through a paused relay")
	}
	r.Resume()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after Resume: %q, %v", buf, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf = make([]byte, 3)
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "new" {
		t.Fatalf("after Resume, new conn: %q, %v", buf, err)
	}
}

func TestCutClosesEveryOpenConnection(t *testing.T) {
	r := relay(t, target(t, echo))
	a, b := dial(t, r), dial(t, r)
	for _, c := range []net.Conn{a, b} {
		if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Cut(); n != 2 {
		t.Fatalf("Cut closed %d links, want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a cut connection still reads")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a cut connection was left open")
		}
	}
	// New connections still work after a cut.
	if _, err := roundTrip(dial(t, r), "y", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestARefusingRelayClosesNewConnectionsOnly(t *testing.T) {
	r := relay(t, target(t, echo))
	old := dial(t, r)
	if _, err := roundTrip(old, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Refuse(true)
	// On loopback the reset can beat connect's return: either fails.
	if c, err := net.Dial("tcp", r.Addr()); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == nil {
			t.Fatal("a refused connection reads")
		}
	}
	if _, err := roundTrip(old, "still", 5*time.Second); err != nil {
		t.Fatalf("Refuse touched a current connection: %v", err)
	}
	r.Refuse(false)
	// The refused connection's reset can still be on its way; a new
	// connection may need a second try, never more than a few.
	var err error
	for range 5 {
		var c net.Conn
		if c, err = net.Dial("tcp", r.Addr()); err == nil {
			_, err = roundTrip(c, "z", 5*time.Second)
			c.Close()
		}
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// counter answers each 'Q' message with a DataRow carrying how many
// queries it has seen, then ReadyForQuery, the way a server answers a
// simple Query.
func counter(c net.Conn) {
	rd := bufio.NewReader(c)
	seen := 0
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(rd, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(rd, body); err != nil {
			return
		}
		seen++
		out := append(testutil.Message('D', string(body)+"#"+string(rune('0'+seen))), testutil.Message('Z', "I")...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func readAnswer(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got string
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == 'Z' {
			return got
		}
		got += string(body)
	}
}

func TestDuplicateNextSendsOneMessageTwiceAndHidesTheSecondAnswer(t *testing.T) {
	r := relay(t, target(t, counter))
	c := dial(t, r)
	r.DuplicateNext([]byte("insert"))
	for _, q := range []string{"select", "insert", "after"} {
		if _, err := c.Write(testutil.Message('Q', q)); err != nil {
			t.Fatal(err)
		}
		got := readAnswer(t, c)
		// The server saw "insert" twice, so "after" is its fourth query.
		want := map[string]string{"select": "select#1", "insert": "insert#2", "after": "after#4"}[q]
		if got != want {
			t.Fatalf("answer to %q = %q, want %q", q, got, want)
		}
	}
	if r.Duplicated() != 1 {
		t.Fatalf("Duplicated() = %d, want 1", r.Duplicated())
	}
}

func TestCloseEndsEveryGoroutineEvenWhilePaused(t *testing.T) {
	to := target(t, echo)
	before := goleak.IgnoreCurrent()
	r, err := New(to)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, r)
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the pipe read and stall
	done := make(chan struct{})
	go func() { r.Close(); r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on a paused relay")
	}
	goleak.VerifyNone(t, before)
}
