package takeover

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pgvalve/pgvalve/internal/listener"
)

// Hello opens a takeover: the new process's protocol version and pid.
type Hello struct {
	Version int `json:"version"`
	PID     int `json:"pid"`
}

// Listeners names the listening sockets whose descriptors come with it,
// in their order: "tcp" first, then "unix" and "http" where there are.
type Listeners struct {
	Version int      `json:"version"`
	PID     int      `json:"pid"`
	Names   []string `json:"names"`
}

// Done ends a takeover: how many clients went to the new process, and
// how many ended in the old one instead.
type Done struct {
	HandedOver int `json:"handed_over"`
	Ended      int `json:"ended"`
}

// Cancel is a cancel request's key.
type Cancel struct {
	PID    uint32 `json:"pid"`
	Secret []byte `json:"secret"`
}

// Listener is the old process's end: where a new process asks to take
// over.
type Listener struct {
	ln *net.UnixListener
}

// Listen listens on path, a socket file only this user may open (mode
// 0600). A socket file nothing answers on is removed first; one that
// something answers on makes Listen fail.
func Listen(path string) (*Listener, error) {
	if err := listener.RemoveStale(path); err != nil {
		if errors.Is(err, listener.ErrInUse) {
			err = fmt.Errorf("%w: a pgvalve runs there; take over from it with --takeover", err)
		}
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("takeover socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("takeover socket: %w", err)
	}
	return &Listener{ln: ln}, nil
}

// Accept waits for a new process. One run by another user is refused
// (the file's mode keeps them out already; this holds even if someone
// loosens it): whoever takes over gets every client's connection.
func (l *Listener) Accept() (*Conn, error) {
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if err := samePeer(c); err != nil {
			c.Close()
			continue
		}
		return &Conn{c: c}, nil
	}
}

// Close stops listening and removes the socket file.
func (l *Listener) Close() error { return l.ln.Close() }

// Dial connects a new process to the old one at path.
func Dial(path string, timeout time.Duration) (*Conn, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("no pgvalve to take over from at %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	if err := samePeer(uc); err != nil {
		c.Close()
		return nil, err
	}
	return &Conn{c: uc}, nil
}
