package backend

import (
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Alive reports whether an idle server connection is still usable, with one
// non-blocking peek at its socket: a server that ended (pg_terminate_backend,
// a restart) has sent its FATAL and closed, which shows up here without a
// round trip. A connection found dead is marked broken.
func (c *Conn) Alive() bool {
	if c.closed.Load() || c.broken != reason.None {
		return false
	}
	switch st, err := wire.Peek(c.netConn); st {
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
