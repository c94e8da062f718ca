//go:build linux

package relaylab

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
)

// Design names a way to relay bytes.
type Design string

const (
	// Goroutines runs two goroutines per client pair over wire.Socket.
	Goroutines Design = "goroutines"
	// EventLoop runs Options.Loops epoll loops on locked OS threads.
	EventLoop Design = "eventloop"
	// Pooled answers logins itself and leases one of Options.PoolSize
	// servers per batch of requests, one goroutine per client.
	Pooled Design = "pooled"
)

// Trigger is how an event loop registers its sockets with epoll.
type Trigger int

const (
	// Edge registers each socket once for input and output, edge-triggered,
	// and never changes the registration: a read shorter than the buffer
	// means the socket is drained, so a message costs one read. A sender
	// that keeps the buffer full (a big COPY) is read until it stops, which
	// holds up the loop's other sockets meanwhile: a product would cap the
	// reads per wake-up and keep its own list of sockets left unread.
	Edge Trigger = iota
	// Level registers for input only and switches to output (and stops
	// the peer's input) with epoll_ctl while a write waits.
	Level
)

// Options configure a Relay.
type Options struct {
	Design   Design
	Upstream string // PostgreSQL's host:port; each client gets its own connection
	// URL logs Pooled's servers in (a PostgreSQL URL); PoolSize is how
	// many (20 when 0).
	URL      string
	PoolSize int
	// Listen is where clients connect (127.0.0.1 at a free port when "").
	Listen  string
	Loops   int // EventLoop: how many loops; GOMAXPROCS when 0
	Trigger Trigger
	// Spin is how many times an event loop polls (epoll_wait with no
	// timeout) before it sleeps in epoll_wait: Go's scheduler spins the
	// same way before parking a thread, to save the sleep and wake-up.
	Spin int
	// Unlocked leaves an event loop's goroutine free to move between
	// threads: a locked one that finds its P taken while it slept must be
	// handed one by another thread, a wake-up more.
	Unlocked bool
}

// engine moves bytes for the pairs handed to it.
type engine interface {
	// add takes over both connections (server is nil for Pooled): the
	// engine closes them.
	add(client, server net.Conn)
	// close ends every pair and every goroutine the engine started.
	close()
}

// Relay accepts clients on a loopback port and relays each to its own
// upstream connection.
type Relay struct {
	ln       net.Listener
	upstream string
	eng      engine
	done     chan struct{} // closed when the accept loop has returned
}

// dialTimeout bounds an upstream connect, so that Close never waits long on
// the accept loop.
const dialTimeout = 5 * time.Second

// Start listens on Options.Listen and relays in the background until
// Close.
func Start(opts Options) (*Relay, error) {
	var eng engine
	switch opts.Design {
	case Goroutines:
		eng = newGoroutines()
	case EventLoop:
		n := opts.Loops
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		var err error
		if eng, err = newEventLoops(n, opts); err != nil {
			return nil, err
		}
	case Pooled:
		opts.Upstream = "" // the engine logs in its own servers
		size := opts.PoolSize
		if size <= 0 {
			size = 20
		}
		var err error
		if eng, err = newPooled(opts.URL, size); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("relaylab: unknown design %q", opts.Design)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		eng.close()
		return nil, err
	}
	r := &Relay{ln: ln, upstream: opts.Upstream, eng: eng, done: make(chan struct{})}
	go r.accept()
	return r, nil
}

// Addr is where clients connect.
func (r *Relay) Addr() *net.TCPAddr { return r.ln.Addr().(*net.TCPAddr) }

// Waits returns how many times the event loops have slept in epoll_wait
// and how many events all their epoll_wait calls returned, all loops
// together; zeros for Goroutines, whose waits happen inside Go's netpoller.
func (r *Relay) Waits() (sleeps, events int64) {
	if e, ok := r.eng.(*eventLoops); ok {
		return e.waits()
	}
	return 0, 0
}

// Close stops accepting, closes every pair and waits for every goroutine
// the relay started.
func (r *Relay) Close() error {
	err := r.ln.Close()
	<-r.done
	r.eng.close()
	return err
}

// accept runs until the listener closes. Dialing here, one client at a
// time, is slow for a burst of logins but keeps ownership simple; the
// benchmark measures the steady state after pgbench's logins.
func (r *Relay) accept() {
	defer close(r.done)
	for {
		c, err := r.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		var s net.Conn
		if r.upstream != "" {
			if s, err = net.DialTimeout("tcp", r.upstream, dialTimeout); err != nil {
				c.Close()
				continue
			}
		}
		r.eng.add(c, s)
	}
}
