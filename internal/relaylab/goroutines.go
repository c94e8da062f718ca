//go:build linux

package relaylab

import (
	"io"
	"net"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// bufSize is each direction's buffer in both designs.
const bufSize = 16 << 10

// goroutines relays each pair with one goroutine per direction, blocking
// in Go's netpoller between messages.
type goroutines struct{ open openConns }

func newGoroutines() *goroutines { return &goroutines{} }

func (g *goroutines) add(client, server net.Conn) {
	cs, ss := wire.NewSocket(client), wire.NewSocket(server)
	g.open.start([]net.Conn{client, server},
		func() { g.pipe(cs, ss, client, server) },
		func() { g.pipe(ss, cs, server, client) })
}

// pipe copies src to dst until either fails, then closes both, which ends
// the other direction's pipe too.
func (g *goroutines) pipe(src io.Reader, dst io.Writer, srcConn, dstConn net.Conn) {
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	g.open.done(srcConn, dstConn)
}

func (g *goroutines) close() { g.open.closeAll() }
