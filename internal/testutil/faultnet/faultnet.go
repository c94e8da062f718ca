// Package faultnet is a small fault-injecting TCP relay for tests. A Relay
// listens on a free 127.0.0.1 port and forwards every connection to a
// target; a test puts it between pgvalve and PostgreSQL and then stalls the
// network (Pause/Resume), cuts every open connection (Cut), refuses new ones
// (Refuse), or, to prove that a checker notices, duplicates one statement on
// its way to the server (DuplicateNext). NewRoundRobin makes it a TCP load
// balancer in front of several targets: each new connection goes to the
// next one.
//
// Every goroutine a Relay starts is owned by it and has ended when Close
// returns.
package faultnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Relay forwards connections from Addr to a target.
//
// Lock order: Relay.mu, then nothing (pipes never hold it while blocking).
type Relay struct {
	targets []string
	next    atomic.Uint64 // connections accepted: the next one goes to targets[next % len]
	ln      net.Listener
	wg      sync.WaitGroup
	done    chan struct{} // closed by Close

	mu struct {
		sync.Mutex
		conns   map[*link]struct{}
		resume  chan struct{} // non-nil while paused; closed by Resume
		refuse  bool
		dupNext []byte // needle of a pending duplication; nil if none
		dups    int    // duplications done
		closed  bool
	}
}

// link is one relayed connection: the client side and the server side.
type link struct {
	client, server net.Conn
	once           sync.Once
	// swallow counts ReadyForQuery messages the server→client pipe must
	// drop, with everything before them: the answers to duplicated
	// messages, which the client never sent.
	swallow chan int
}

func (l *link) close() {
	l.once.Do(func() {
		for _, c := range []net.Conn{l.client, l.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a cut, not a goodbye: RST where we can
			}
			_ = c.Close()
		}
	})
}

// New starts a relay to target ("host:port") on a free loopback port.
func New(target string) (*Relay, error) { return NewRoundRobin(target) }

// NewRoundRobin starts a relay on a free loopback port that sends each new
// connection to the next of targets in turn, as a TCP load balancer in
// front of several instances does.
func NewRoundRobin(targets ...string) (*Relay, error) {
	if len(targets) == 0 {
		return nil, errors.New("faultnet: no target")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{targets: slices.Clone(targets), ln: ln, done: make(chan struct{})}
	r.mu.conns = map[*link]struct{}{}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's listening address, "127.0.0.1:port".
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Port is the relay's listening port.
func (r *Relay) Port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// Pause stalls the network: bytes already read are held and nothing more
// moves in either direction, on current and new connections, until Resume.
func (r *Relay) Pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.resume == nil {
		r.mu.resume = make(chan struct{})
	}
}

// Resume lets held bytes through again.
func (r *Relay) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.resume != nil {
		close(r.mu.resume)
		r.mu.resume = nil
	}
}

// Cut closes every current connection abruptly, both sides.
func (r *Relay) Cut() int {
	r.mu.Lock()
	links := make([]*link, 0, len(r.mu.conns))
	for l := range r.mu.conns {
		links = append(links, l)
	}
	r.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return len(links)
}

// Refuse makes the relay close new connections at once (on) or forward
// them again (off). Current connections are not touched.
func (r *Relay) Refuse(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.refuse = on
}

// DuplicateNext makes the relay send the next client→server read that
// contains needle twice, and drop the server's answer to the second copy
// (everything up to its ReadyForQuery), so the client never notices. It is
// meant for small, whole messages such as a simple Query: it breaks the
// invariant "a statement that reached a server is never sent again" on
// purpose, to show that a checker catches it.
func (r *Relay) DuplicateNext(needle []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.dupNext = bytes.Clone(needle)
}

// Duplicated is how many reads DuplicateNext has duplicated.
func (r *Relay) Duplicated() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.dups
}

// Conns is the number of open relayed connections.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mu.conns)
}

// Close stops listening, cuts every connection and waits for every
// goroutine of the relay. Safe to call twice.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.mu.closed = true
	close(r.done)
	r.mu.Unlock()
	err := r.ln.Close()
	r.Cut()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	defer r.wg.Done()
	var backoff time.Duration
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A temporary failure (out of descriptors): back off a little.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
				continue
			case <-r.done:
				return
			}
		}
		backoff = 0
		r.mu.Lock()
		refuse, closed := r.mu.refuse, r.mu.closed
		r.mu.Unlock()
		if refuse || closed {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		target := r.targets[(r.next.Add(1)-1)%uint64(len(r.targets))]
		r.wg.Add(1)
		go r.serve(c, target)
	}
}

// serve dials target for client c and pipes both ways until either side
// ends or the relay cuts the link.
func (r *Relay) serve(c net.Conn, target string) {
	defer r.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	s, err := d.Dial("tcp", target)
	if err != nil {
		_ = c.Close()
		return
	}
	l := &link{client: c, server: s, swallow: make(chan int, 16)}
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		l.close()
		return
	}
	r.mu.conns[l] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.mu.conns, l)
		r.mu.Unlock()
	}()
	var pipes sync.WaitGroup
	pipes.Add(1)
	go func() {
		defer pipes.Done()
		r.pipe(l, c, s, true)
	}()
	r.pipe(l, s, c, false)
	pipes.Wait()
}

// pipe copies src to dst until either fails, then closes the link so the
// other direction ends too.
func (r *Relay) pipe(l *link, src, dst net.Conn, toServer bool) {
	defer l.close()
	buf := make([]byte, 32<<10)
	var sw swallower
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.wait() {
				return
			}
			chunk := buf[:n]
			if toServer {
				if r.takeDup(chunk) {
					// Told before either copy leaves, so the answer to
					// the first cannot overtake it.
					l.swallow <- 1
					if _, err := dst.Write(chunk); err != nil {
						return
					}
				}
			} else {
				chunk = sw.filter(chunk, l.swallow)
			}
			if _, err := dst.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait blocks while the relay is paused; false means it is closing.
func (r *Relay) wait() bool {
	for {
		r.mu.Lock()
		resume, closed := r.mu.resume, r.mu.closed
		r.mu.Unlock()
		if closed {
			return false
		}
		if resume == nil {
			return true
		}
		select {
		case <-resume:
		case <-r.done:
			return false
		}
	}
}

// takeDup reports whether chunk is the one to duplicate, and if so clears
// the pending duplication.
func (r *Relay) takeDup(chunk []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.dupNext == nil || !bytes.Contains(chunk, r.mu.dupNext) {
		return false
	}
	r.mu.dupNext = nil
	r.mu.dups++
	return true
}

// swallower frames the server→client stream just enough to drop the
// answer to a duplicated request: it passes messages through up to the
// first ReadyForQuery after a duplication, then drops everything up to and
// including the next one.
type swallower struct {
	pending int    // answers still to drop
	passedZ bool   // the real answer's ReadyForQuery went through
	partial []byte // an incomplete message carried to the next chunk
}

func (s *swallower) filter(chunk []byte, more chan int) []byte {
	for drained := false; !drained; {
		select {
		case n := <-more:
			s.pending += n
		default:
			drained = true
		}
	}
	// Framing starts with a duplication: the client sent the duplicated
	// request after the whole answer to its previous one, so the stream is
	// at a message boundary then.
	if s.pending == 0 && len(s.partial) == 0 {
		return chunk
	}
	data := append(s.partial, chunk...)
	s.partial = nil
	var out []byte
	for len(data) > 0 {
		if len(data) < 5 {
			s.partial = append([]byte(nil), data...)
			break
		}
		size := 1 + int(binary.BigEndian.Uint32(data[1:5]))
		if len(data) < size {
			s.partial = append([]byte(nil), data...)
			break
		}
		msg := data[:size]
		data = data[size:]
		drop := s.pending > 0 && s.passedZ
		if !drop {
			out = append(out, msg...)
		}
		if msg[0] == 'Z' && s.pending > 0 {
			if s.passedZ {
				s.pending--
				s.passedZ = false
			} else {
				s.passedZ = true
			}
		}
	}
	return out
}

var _ io.Closer = (*Relay)(nil)
