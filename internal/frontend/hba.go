package frontend

import (
	"context"
	"net"
	"net/netip"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/hba"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
)

// UnixAddr is how a client on the unix socket is named in logs, SHOW
// CLIENTS and admission, where a TCP client has its address: the socket
// has no peer address, and all its clients count as one address.
const UnixAddr = "unix"

// IsLocal says whether conn came in on the unix socket.
func IsLocal(conn net.Conn) bool { return conn.LocalAddr().Network() == "unix" }

// ClientAddr is conn's client address as logs and SHOW CLIENTS show it.
func ClientAddr(conn net.Conn) string {
	if IsLocal(conn) {
		return UnixAddr
	}
	return conn.RemoteAddr().String()
}

// HostOf is a client address (what ClientAddr returned) without the port:
// what failures and logins in progress are counted by (part of it: no copy).
func HostOf(addr string) string {
	if addr == UnixAddr {
		return UnixAddr
	}
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// byHBA authenticates c with the method of the first auth_hba_file line
// that matches it. A reject line and no line at all are answered as a
// wrong password, after a SCRAM exchange against a decoy, as for an
// unknown user, so that a client cannot tell them apart; the log says
// which it was.
func (d *door) byHBA(ctx context.Context, c session.Client) error {
	var rules *hba.Rules // nil matches no one
	if d.cfg.HBA != nil {
		rules = d.cfg.HBA()
	}
	addr, _ := netip.ParseAddr(d.host())
	rule, ok := rules.Match(hba.Client{Local: d.local, TLS: d.tls, Database: c.Database, User: c.User, Addr: addr})
	switch {
	case !ok:
		d.log.Info("auth_hba_file: no line matches this client; refused as a wrong password")
		return d.decoy(c)
	case rule.Method == hba.Reject:
		d.log.Info("auth_hba_file rejects this client; refused as a wrong password", "line", rule.Line)
		return d.decoy(c)
	}
	d.log.Debug("auth_hba_file", "line", rule.Line, "method", rule.Method)
	if err := d.clientCert(rule, c); err != nil {
		return err
	}
	switch rule.Method {
	case hba.Trust:
		return nil
	case hba.Cert:
		return d.certificate(c)
	case hba.Peer:
		return d.peer(c)
	case hba.MD5:
		return d.exchange(ctx, c, config.AuthMD5)
	case hba.SCRAM:
		return d.exchange(ctx, c, config.AuthSCRAM)
	}
	return d.exchange(ctx, c, config.AuthPlain)
}

// clientCert enforces a line's clientcert option before its method runs:
// a verified client certificate, naming the user for verify-full.
func (d *door) clientCert(rule hba.Rule, c session.Client) error {
	switch {
	case rule.ClientCert == hba.CertNone:
		return nil
	case d.peerCert() == nil:
		return d.refuse(reason.NoClientCert)
	case rule.ClientCert == hba.CertVerifyFull && d.certName() != c.User:
		d.slowDown()
		return d.refuse(reason.CertUserMismatch, c.User)
	}
	return nil
}

// decoy runs SCRAM against a verifier no password matches and answers
// 28P01, as for an unknown user.
func (d *door) decoy(c session.Client) error {
	x := auth.Exchange{W: d.conn, R: c.Reader, User: c.User, Decoy: d.cfg.Decoy, Binding: d.binding}
	return d.authFailed(c, x.SCRAM())
}

// peer admits a unix socket client whose operating system user is the
// user it asks to be, as PostgreSQL's peer method; anyone else gets the
// wrong-password answer.
func (d *door) peer(c session.Client) error {
	name, err := auth.PeerUser(d.conn)
	switch {
	case err != nil:
		d.log.Warn("peer authentication: cannot tell the client's user", "err", err)
		return d.authFailed(c, auth.ErrFailed)
	case name != c.User:
		d.log.Info("peer authentication: the client runs as another operating system user", "os_user", name)
		return d.authFailed(c, auth.ErrFailed)
	}
	d.passed()
	return nil
}
