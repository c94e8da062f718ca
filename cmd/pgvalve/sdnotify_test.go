package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/sdnotify"
)

// Under systemd (Type=notify), pgvalve says READY=1 once it listens,
// RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1 on SIGTERM.
func TestPgvalveTellsSystemdWhenItIsReadyReloadsAndStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = sock.SetReadDeadline(time.Now().Add(eventually))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("nothing told to systemd: %v", err)
		}
		return string(buf[:n])
	}
	cfg := writeFile(t, configText(1))
	c := startChildEnv(t, []string{sdnotify.Socket + "=" + path}, "--config", cfg)
	if got := next(); !strings.HasPrefix(got, "READY=1\nSTATUS=serving on 127.0.0.1:"+c.port) {
		t.Fatalf("first message %q; want READY=1 with the address", got)
	}
	c.signal(t, syscall.SIGHUP)
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("on SIGHUP %q; want RELOADING=1", got)
	}
	if got := next(); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("after the reload %q; want READY=1", got)
	}
	c.signal(t, syscall.SIGTERM)
	if got := next(); got != "STOPPING=1" {
		t.Fatalf("on SIGTERM %q; want STOPPING=1", got)
	}
}
