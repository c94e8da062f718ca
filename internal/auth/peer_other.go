//go:build !linux

package auth

import (
	"errors"
	"net"
)

// PeerUser would name the operating system user at the other end of a
// unix socket; pgvalve reads it (SO_PEERCRED) on Linux only, so peer
// authentication refuses every client elsewhere.
func PeerUser(net.Conn) (string, error) {
	return "", errors.New("peer authentication is supported on Linux only")
}
