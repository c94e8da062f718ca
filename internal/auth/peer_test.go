package auth

import (
	"net"
	"os/user"
	"path/filepath"
	"runtime"
	"testing"
)

func TestPeerUserNamesTheProcessAtTheOtherEndOfAUnixSocket(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	name, err := PeerUser(server)
	if runtime.GOOS != "linux" {
		if err == nil {
			t.Fatal("peer worked off Linux")
		}
		return
	}
	me, _ := user.Current()
	if err != nil || name != me.Username {
		t.Fatalf("PeerUser = %q, %v; want %q", name, err, me.Username)
	}
}

func TestPeerUserRefusesATCPConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if name, err := PeerUser(server); err == nil {
		t.Fatalf("PeerUser over TCP = %q", name)
	}
}
