//go:build linux

package relaylab

import (
	"io"
	"net"
	"sync"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// bufSize is each direction's buffer in both designs.
const bufSize = 16 << 10

// goroutines relays each pair with one goroutine per direction, blocking
// in Go's netpoller between messages.
type goroutines struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newGoroutines() *goroutines {
	return &goroutines{conns: make(map[net.Conn]struct{})}
}

func (g *goroutines) add(client, server net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		client.Close()
		server.Close()
		return
	}
	g.conns[client], g.conns[server] = struct{}{}, struct{}{}
	cs, ss := wire.NewSocket(client), wire.NewSocket(server)
	g.wg.Add(2)
	go g.pipe(cs, ss, client, server)
	go g.pipe(ss, cs, server, client)
}

// pipe copies src to dst until either fails, then closes both, which ends
// the other direction's pipe too.
func (g *goroutines) pipe(src io.Reader, dst io.Writer, srcConn, dstConn net.Conn) {
	defer g.wg.Done()
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
	srcConn.Close()
	dstConn.Close()
	g.mu.Lock()
	delete(g.conns, srcConn)
	delete(g.conns, dstConn)
	g.mu.Unlock()
}

func (g *goroutines) close() {
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}
