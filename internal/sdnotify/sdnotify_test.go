package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen is a datagram socket standing in for systemd's, named in
// NOTIFY_SOCKET for the test.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestEachStateReachesTheSocketAsOneDatagram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, path)
	t.Setenv(Socket, path)
	if sent, err := Ready("serving on 127.0.0.1:6432"); !sent || err != nil {
		t.Fatalf("Ready: %v, %v", sent, err)
	}
	if got := read(t, sock); got != "READY=1\nSTATUS=serving on 127.0.0.1:6432" {
		t.Fatalf("READY sent %q", got)
	}
	if _, err := Reloading(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sock); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(got, "=0") {
		t.Fatalf("RELOADING sent %q; want the monotonic clock with it", got)
	}
	if _, err := Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sock); got != "STOPPING=1" {
		t.Fatalf("STOPPING sent %q", got)
	}
}

func TestAnAbstractSocketIsNamedWithAnAt(t *testing.T) {
	name := "pgvalve-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	sock := listen(t, "\x00"+name)
	t.Setenv(Socket, "@"+name)
	if _, err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, sock); got != "READY=1" {
		t.Fatalf("sent %q", got)
	}
}

func TestWithoutSystemdNothingIsSent(t *testing.T) {
	t.Setenv(Socket, "")
	if sent, err := Ready("x"); sent || err != nil {
		t.Fatalf("Ready without NOTIFY_SOCKET: %v, %v; want nothing sent, no error", sent, err)
	}
	t.Setenv(Socket, filepath.Join(t.TempDir(), "nobody-listens"))
	if sent, err := Ready("x"); !sent || err == nil {
		t.Fatalf("Ready to a socket nobody listens on: %v, %v; want an error to log", sent, err)
	}
}
