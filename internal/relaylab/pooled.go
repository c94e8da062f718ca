//go:build linux

package relaylab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// pooled is the least a transaction pooler built of goroutines can do: one
// goroutine per client answers the client's login itself (no
// authentication), and for each batch of whole requests leases one of a
// fixed set of logged-in servers (a buffered channel: FIFO, a wait parks
// the goroutine), writes the batch, reads the answers on the same
// goroutine until every request has its ReadyForQuery, gives the server
// back unless a transaction is open, and writes the answers to the
// client. No statement tracking, no settings, no timeouts, no metering:
// pgvalve's relay minus everything pgvalve adds, so its CPU per
// transaction is the floor of that design.
type pooled struct {
	servers  chan *server
	all      []*server
	greeting []byte
	open     openConns // the clients
}

type server struct {
	conn net.Conn
	sock io.ReadWriter
}

// newPooled logs size servers in to url (a PostgreSQL URL) and learns the
// greeting its clients get from the first one.
func newPooled(url string, size int) (*pooled, error) {
	p := &pooled{servers: make(chan *server, size)}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	for range size {
		pc, err := pgconn.Connect(ctx, url)
		if err != nil {
			p.close()
			return nil, err
		}
		if err := pc.SyncConn(ctx); err != nil {
			pc.Close(ctx)
			p.close()
			return nil, err
		}
		hc, err := pc.Hijack()
		if err != nil {
			pc.Close(ctx)
			p.close()
			return nil, err
		}
		if p.greeting == nil {
			p.greeting = greeting(hc.ParameterStatuses)
		}
		s := &server{conn: hc.Conn, sock: wire.NewSocket(hc.Conn)}
		p.all = append(p.all, s)
		p.servers <- s
	}
	return p, nil
}

// greeting is AuthenticationOk, the server's parameters, a made-up cancel
// key and ReadyForQuery.
func greeting(params map[string]string) []byte {
	buf := wire.Append(nil, &pgproto3.AuthenticationOk{})
	for k, v := range params {
		buf = wire.Append(buf, &pgproto3.ParameterStatus{Name: k, Value: v})
	}
	buf = wire.Append(buf, &pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	return wire.Append(buf, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

func (p *pooled) add(client, _ net.Conn) {
	p.open.start([]net.Conn{client}, func() { p.serve(client) })
}

func (p *pooled) serve(c net.Conn) {
	defer p.open.done(c)
	cs := wire.NewSocket(c)
	if login(cs, p.greeting) != nil {
		return
	}
	buf := make([]byte, bufSize)
	var srv *server // held from a batch that opens a transaction to one that ends it
	defer func() {
		if srv != nil {
			p.servers <- srv // a lab has no broken-server handling
		}
	}()
	for {
		n, requests, err := readWhole(cs, buf)
		if err != nil || requests < 0 {
			return // gone, Terminate, or more than the lab handles
		}
		if srv == nil {
			srv = <-p.servers
		}
		m, err := srv.exchange(buf[:n], requests, buf)
		if err != nil {
			return
		}
		if buf[m-1] == 'I' { // the last ReadyForQuery's status: no transaction open
			p.servers <- srv
			srv = nil
		}
		if _, err := cs.Write(buf[:m]); err != nil {
			return
		}
	}
}

// exchange writes batch and reads into buf until requests ReadyForQuery
// messages have come; it returns how much of buf they fill.
func (s *server) exchange(batch []byte, requests int, buf []byte) (int, error) {
	if _, err := s.sock.Write(batch); err != nil {
		return 0, err
	}
	n, seen, scanned := 0, 0, 0
	countReady := func(typ byte) bool {
		if typ == 'Z' {
			seen++
		}
		return true
	}
	for seen < requests {
		if n == len(buf) {
			return 0, errors.New("relaylab: answer larger than the buffer")
		}
		r, err := s.sock.Read(buf[n:])
		if err != nil {
			return 0, err
		}
		n += r
		scanned = wholeMessages(buf[:n], scanned, countReady)
	}
	return n, nil
}

// readWhole reads client messages into buf until it holds only whole
// ones, and counts the requests among them (Query, Sync); requests is -1
// for a Terminate or a batch the lab does not handle.
func readWhole(cs io.Reader, buf []byte) (n, requests int, err error) {
	countRequests := func(typ byte) bool {
		switch typ {
		case 'Q', 'S':
			requests++
		case 'X', 'F', 'd', 'c', 'f', 'H':
			return false
		}
		return true
	}
	for {
		r, err := cs.Read(buf[n:])
		if err != nil {
			return 0, 0, err
		}
		n += r
		requests = 0
		at := wholeMessages(buf[:n], 0, countRequests)
		switch {
		case at < 0:
			return n, -1, nil
		case at == n && requests > 0:
			return n, requests, nil
		case n == len(buf):
			return n, -1, nil
		}
	}
}

// wholeMessages calls visit with the type of each whole message in buf
// from at on, and returns where the first incomplete one starts (len(buf)
// when none is), or -1 once visit returns false.
func wholeMessages(buf []byte, at int, visit func(typ byte) bool) int {
	for at+5 <= len(buf) {
		size := 1 + int(binary.BigEndian.Uint32(buf[at+1:]))
		if at+size > len(buf) {
			break
		}
		if !visit(buf[at]) {
			return -1
		}
		at += size
	}
	return at
}

// login answers a client's startup with greeting, refusing SSL and GSS
// encryption as a server without them does.
func login(cs io.ReadWriter, greeting []byte) error {
	var head [8]byte
	for {
		if _, err := io.ReadFull(cs, head[:]); err != nil {
			return err
		}
		size := int(binary.BigEndian.Uint32(head[:4]))
		if size < 8 || size > 10000 {
			return fmt.Errorf("relaylab: startup message of %d bytes", size)
		}
		if _, err := io.CopyN(io.Discard, cs, int64(size-8)); err != nil {
			return err
		}
		switch binary.BigEndian.Uint32(head[4:]) {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest
			if _, err := cs.Write([]byte{'N'}); err != nil {
				return err
			}
		case 80877102: // CancelRequest: not in the lab
			return errors.New("relaylab: cancel request")
		default:
			_, err := cs.Write(greeting)
			return err
		}
	}
}

func (p *pooled) close() {
	p.open.closeAll()
	for _, s := range p.all {
		s.conn.Close()
	}
}
