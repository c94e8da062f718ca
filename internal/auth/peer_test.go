package auth

import (
	"net"
	"os/user"
	"path/filepath"
	"runtime"
	"testing"
)

func TestPeerUserNamesTheProcessAtTheOtherEndOfAUnixSocket(t *testing.T) {
	server := acceptedConn(t, "unix", filepath.Join(t.TempDir(), "s"))
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
	server := acceptedConn(t, "tcp", "127.0.0.1:0")
	if name, err := PeerUser(server); err == nil {
		t.Fatalf("PeerUser over TCP = %q", name)
	}
}

// acceptedConn is the server end of a connection made to a listener on
// network and address; both ends close when the test ends.
func acceptedConn(t *testing.T, network, address string) net.Conn {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server
}
