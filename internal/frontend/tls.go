package frontend

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/xdg-go/scram"

	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// tlsRecordHandshake is the first byte of a TLS ClientHello: a client
// using PostgreSQL 17's direct TLS (sslnegotiation=direct) starts with it
// instead of a packet length.
const tlsRecordHandshake = 0x16

// declined answers an SSLRequest or GSSENCRequest pgvalve does not take.
var declined = []byte{'N'}

// readStartup reads packets until a StartupMessage or CancelRequest. An
// SSLRequest is answered 'S' and the handshake done when TLS is on ('N'
// otherwise), a direct TLS handshake is accepted, and GSSENCRequest is
// declined.
func (d *door) readStartup() (*wire.Startup, error) {
	var src io.Reader = d.sock
	if d.cfg.TLS != nil && !d.tls && d.tlsSrv == nil && !d.local {
		d.tlsSrv = d.cfg.TLS() // one configuration for the whole handshake
	}
	if !d.tls && d.tlsSrv != nil {
		var first [1]byte
		if _, err := io.ReadFull(d.sock, first[:]); err != nil {
			return nil, err
		}
		if first[0] == tlsRecordHandshake {
			if err := d.handshake(&prefixed{Conn: d.conn, head: first[:]}, true); err != nil {
				return nil, err
			}
			src = d.conn
		} else {
			src = io.MultiReader(bytes.NewReader(first[:]), d.sock)
		}
	}
	for {
		st, err := wire.ReadStartup(src)
		if err != nil {
			if errors.Is(err, wire.ErrBadStartup) {
				d.cfg.Relay.Fatal(d.conn, reason.BadStartup)
			}
			return nil, err
		}
		switch {
		case st.Kind == wire.KindSSLRequest && d.tls:
			d.cfg.Relay.Fatal(d.conn, reason.BadStartup) // PostgreSQL too refuses a second negotiation
			return nil, errors.New("SSLRequest inside TLS")
		case st.Kind == wire.KindSSLRequest && d.tlsSrv != nil:
			if err := d.startTLS(); err != nil {
				return nil, err
			}
			src = d.conn // encrypted from here on
		case st.Kind == wire.KindSSLRequest, st.Kind == wire.KindGSSENCRequest:
			if _, err := d.sock.Write(declined); err != nil {
				return nil, err
			}
			src = d.sock
		default:
			return st, nil
		}
	}
}

// startTLS answers an SSLRequest 'S' and runs the handshake. Bytes that
// came after the SSLRequest, before the answer, are refused: they were
// sent in cleartext and would otherwise be read as if encrypted (the
// CVE-2021-23214 class).
func (d *door) startTLS() error {
	if st, _ := wire.Peek(d.conn); st == wire.PeekData {
		d.cfg.Relay.Fatal(d.conn, reason.UnencryptedAfterSSL)
		linger(d.conn)
		return errors.New(reason.UnencryptedAfterSSL.Message())
	}
	if _, err := d.conn.Write([]byte{'S'}); err != nil {
		return err
	}
	return d.handshake(d.conn, false)
}

// handshake makes the client's connection TLS. A direct TLS client must
// have negotiated ALPN "postgresql", as PostgreSQL requires.
func (d *door) handshake(raw net.Conn, direct bool) error {
	h := d.tlsSrv.ForClient()
	tc := tls.Server(raw, h.Config)
	if err := tc.Handshake(); err != nil {
		d.log.Info("TLS handshake failed", "err", err)
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if direct && tc.ConnectionState().NegotiatedProtocol != tlsconf.ALPN {
		d.log.Info("direct TLS without ALPN postgresql refused")
		return errors.New("direct TLS without ALPN postgresql")
	}
	d.conn, d.sock, d.tls = tc, tc, true
	state := tc.ConnectionState()
	state.PeerCertificates = []*x509.Certificate{h.Leaf} // tls-server-end-point hashes pgvalve's own certificate
	if cb, err := scram.NewTLSServerEndpointBinding(&state); err == nil {
		d.binding = &cb
	}
	return nil
}

// prefixed is a connection whose first bytes were read already.
type prefixed struct {
	net.Conn
	head []byte
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// linger reads and drops what a refused client still sends, briefly and
// up to a bound, after half-closing: closing a socket with unread input
// resets the connection, and the client might lose the error just sent.
func linger(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c, 64<<10)
}
