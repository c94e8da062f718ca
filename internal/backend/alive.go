package backend

import (
	"crypto/tls"
	"net"

	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Alive reports whether an idle server connection is still usable, with one
// non-blocking peek at its socket: a server that ended (pg_terminate_backend,
// a restart) has sent its FATAL and closed, which shows up here without a
// round trip. A connection found dead is marked broken.
//
// Over TLS the peek looks at the TCP socket under it, since a *tls.Conn
// has none to look at: it sees the server close, or send anything (its
// FATAL and its close_notify are records); it cannot see a record the TLS
// layer already read ahead of the last answer, which only a server that
// went away at that very moment leaves, and which the next request then
// meets as a lost server.
func (c *Conn) Alive() bool {
	if c.closed.Load() || c.broken != reason.None {
		return false
	}
	switch st, err := c.peeker.Peek(); st {
	case wire.PeekQuiet:
		return true
	case wire.PeekFailed:
		c.MarkBroken(reason.ServerPeekFailed, err.Error())
	case wire.PeekClosed:
		c.MarkBroken(reason.ServerClosed, "")
	default:
		// An idle server has nothing to say; whatever it sent (most
		// likely a FATAL before closing) means it is not usable.
		c.MarkBroken(reason.ServerSpokeWhileIdle, "")
	}
	return false
}

// tcpOf is the socket under c: the TCP connection under TLS.
func tcpOf(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}
