// Package takeover is how a new pgvalve process takes over from a running
// one without refusing a connection (online restart, PgBouncer's -R): over
// a unix socket only the same user can reach, the old process hands the new
// one its listening sockets, then its clients idle between transactions
// with their state, and drains the rest. This file is the wire format:
// typed JSON messages, each with the file descriptors it carries.
package takeover

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Kind says what a message is.
type Kind uint8

// The messages, in the order a takeover sends them.
const (
	// KindHello: the new process asks to take over (Hello).
	KindHello Kind = iota + 1
	// KindListeners: the old process's listening sockets (Listeners), one
	// descriptor each.
	KindListeners
	// KindServing: the new process accepts on them; the old one stops.
	KindServing
	// KindClient: one client connection and its state (a descriptor).
	KindClient
	// KindDone: the old process handed over or ended every client (Done).
	KindDone
	// KindCancel: a cancel request the new process received for a client
	// still in the old one (Cancel).
	KindCancel
)

// carries says whether a message of kind may come with n descriptors:
// the listeners with at least one, a client with one, others with none.
func (k Kind) carries(n int) bool {
	switch k {
	case KindListeners:
		return n >= 1
	case KindClient:
		return n == 1
	}
	return n == 0
}

// Version is the takeover protocol's; a new process refuses an old one
// that speaks another.
const Version = 1

const (
	// maxBody bounds a message's JSON: a client's state is mostly its
	// prepared statements' texts, which max_message_size bounds one by one.
	maxBody = 64 << 20
	// maxFiles is the most descriptors one message carries.
	maxFiles = 4
	// headerLen is a message's kind, its count of descriptors and the
	// length of its body.
	headerLen = 1 + 1 + 4
)

// Conn is one end of a takeover. Send may be called from several
// goroutines (sessions hand themselves over as they reach a safe point);
// Recv from one.
type Conn struct {
	c  *net.UnixConn
	mu sync.Mutex // one message at a time
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// SetDeadline bounds the reads and writes to come.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// Send writes a message: body as JSON, with fds, which stay open here (the
// kernel gives the receiver its own copies).
func (c *Conn) Send(kind Kind, body any, fds ...int) error {
	if len(fds) > maxFiles || !kind.carries(len(fds)) {
		return fmt.Errorf("takeover: message %d with %d descriptors", kind, len(fds))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if len(b) > maxBody {
		return fmt.Errorf("takeover: a message of %d bytes, at most %d", len(b), maxBody)
	}
	var hdr [headerLen]byte
	hdr[0], hdr[1] = byte(kind), byte(len(fds))
	binary.BigEndian.PutUint32(hdr[2:], uint32(len(b)))
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The header goes alone, with the descriptors: the receiver reads
	// exactly it in one call, so the descriptors can only come with it.
	if _, _, err := c.c.WriteMsgUnix(hdr[:], oob, nil); err != nil {
		return err
	}
	_, err = c.c.Write(b)
	return err
}

// Recv reads a message, decoding its body into body (which may be nil
// for a message with none), and returns the descriptors it carried as
// files the caller owns.
func (c *Conn) Recv(body any) (Kind, []*os.File, error) {
	var hdr [headerLen]byte
	oob := make([]byte, syscall.CmsgSpace(4*maxFiles))
	n, oobn, flags, _, err := c.c.ReadMsgUnix(hdr[:], oob)
	if err != nil {
		return 0, nil, err
	}
	files, ferr := rights(oob[:oobn])
	switch {
	case ferr != nil:
	case flags&syscall.MSG_CTRUNC != 0:
		ferr = errors.New("takeover: descriptors cut short")
	case n == 0:
		ferr = io.ErrUnexpectedEOF
	case n < headerLen:
		_, ferr = io.ReadFull(c.c, hdr[n:])
	}
	if ferr == nil {
		ferr = checkHeader(hdr, len(files))
	}
	if ferr != nil {
		CloseAll(files)
		return 0, nil, ferr
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[2:]))
	if _, err := io.ReadFull(c.c, b); err != nil {
		CloseAll(files)
		return 0, nil, err
	}
	if body != nil {
		if err := json.Unmarshal(b, body); err != nil {
			CloseAll(files)
			return 0, nil, fmt.Errorf("takeover: message %d: %w", hdr[0], err)
		}
	}
	return Kind(hdr[0]), files, nil
}

// checkHeader refuses a header that does not describe what came with it,
// before anything is allocated for its body.
func checkHeader(hdr [headerLen]byte, files int) error {
	if k := Kind(hdr[0]); k < KindHello || k > KindCancel {
		return fmt.Errorf("takeover: unknown message %d", hdr[0])
	}
	if int(hdr[1]) != files {
		return fmt.Errorf("takeover: %d descriptors announced, %d came", hdr[1], files)
	}
	if !Kind(hdr[0]).carries(files) {
		return fmt.Errorf("takeover: message %d with %d descriptors", hdr[0], files)
	}
	if l := binary.BigEndian.Uint32(hdr[2:]); l > maxBody {
		return fmt.Errorf("takeover: a message of %d bytes, at most %d", l, maxBody)
	}
	return nil
}

// Expect receives a message that must be of kind; another is an error,
// and its descriptors are closed.
func (c *Conn) Expect(kind Kind, body any) ([]*os.File, error) {
	k, files, err := c.Recv(body)
	if err != nil {
		return nil, err
	}
	if k != kind {
		CloseAll(files)
		return nil, fmt.Errorf("takeover: expected message %d, got %d", kind, k)
	}
	return files, nil
}

// rights turns the descriptors in a control message into files.
func rights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue // not descriptors: credentials and the like
		}
		for _, fd := range fds {
			syscall.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "takeover"))
		}
	}
	return files, nil
}

// CloseAll closes the files a message brought.
func CloseAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// RawFD runs f with the descriptor under c (a net.Conn or net.Listener
// that has one), without duplicating it.
func RawFD(c any, f func(fd int) error) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return fmt.Errorf("takeover: %T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
