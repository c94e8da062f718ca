//go:build linux

package relaylab

import (
	"net"
	"sync"
)

// openConns is the connections a goroutine engine holds and the goroutines
// it started on them, so that closing it ends both.
type openConns struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// start records cs and runs each of fns on a goroutine of its own; once
// closed, it closes cs instead and runs nothing.
func (o *openConns) start(cs []net.Conn, fns ...func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		for _, c := range cs {
			c.Close()
		}
		return
	}
	if o.m == nil {
		o.m = make(map[net.Conn]struct{})
	}
	for _, c := range cs {
		o.m[c] = struct{}{}
	}
	for _, fn := range fns {
		o.wg.Go(fn)
	}
}

// done closes cs and forgets them.
func (o *openConns) done(cs ...net.Conn) {
	for _, c := range cs {
		c.Close()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range cs {
		delete(o.m, c)
	}
}

// closeAll closes every connection held and waits for the goroutines.
func (o *openConns) closeAll() {
	o.mu.Lock()
	o.closed = true
	for c := range o.m {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}
