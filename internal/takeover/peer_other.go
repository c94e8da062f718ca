//go:build !linux

package takeover

import (
	"errors"
	"net"
)

// samePeer cannot tell who the peer is here (SO_PEERCRED is Linux's), so
// it refuses every takeover rather than hand clients to a stranger.
func samePeer(*net.UnixConn) error {
	return errors.New("takeover: online restart needs Linux (SO_PEERCRED)")
}
