package listener

import (
	"net"
	"os"
	"strings"
	"testing"
)

func TestUnixSocketGetsItsModeReplacesAStaleFileAndIsRemovedOnClose(t *testing.T) {
	dir := t.TempDir()
	path := SocketPath(dir, 6543)
	// A socket file whose process died: bound, then its fd closed without
	// the unlink Go would do.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	ln, err := Unix(dir, 6543, 0o770)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o770 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v; want a socket with mode 0770", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := Unix(dir, 6543, 0o777); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("a second listener on a live socket: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after close: %v", err)
	}
}

func TestUnixRefusesToRemoveAFileThatIsNotASocket(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(SocketPath(dir, 7000), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Unix(dir, 7000, 0o777); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(SocketPath(dir, 7000)); string(b) != "mine" {
		t.Fatal("the file was touched")
	}
}
