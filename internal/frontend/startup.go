package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// checkStartup validates a StartupMessage and returns the client it names,
// with the settings to apply on its servers.
func (d *door) checkStartup(st *wire.Startup) (session.Client, error) {
	c := session.Client{Conn: d.conn}
	if st.Major != 3 {
		d.cfg.Relay.Fatal(d.conn, reason.UnsupportedProtocol, st.Major, st.Minor)
		return c, errors.New("unsupported protocol")
	}
	kept, err := d.negotiate(st)
	if err != nil {
		return c, err
	}
	c.User, _ = st.Get("user")
	if c.User == "" {
		d.cfg.Relay.Fatal(d.conn, reason.NoUser)
		return c, errors.New("no user name")
	}
	c.Database, _ = st.Get("database")
	if c.Database == "" {
		c.Database = c.User
	}
	if v, ok := st.Get("replication"); ok && v != "false" && v != "off" && v != "0" && v != "no" {
		d.cfg.Relay.Fatal(d.conn, reason.Replication)
		return c, errors.New("replication connection")
	}
	d.log = d.log.With("db", c.Database, "user", c.User)
	c.Remote = d.remote
	c.Params, err = backend.StartupParams(kept)
	if err != nil {
		d.cfg.Relay.Fatal(d.conn, reason.BadStartupParam, err)
		return c, err
	}
	return c, nil
}

// negotiate drops the _pq_. protocol options pgvalve does not know and,
// when the client asked for more than protocol 3.0 offers, says so the way
// PostgreSQL does (NegotiateProtocolVersion); the login goes on. It
// returns the startup parameters left, which st keeps too.
func (d *door) negotiate(st *wire.Startup) ([]wire.Param, error) {
	kept, unknown := st.Params, []string(nil)
	if slices.ContainsFunc(st.Params, isProtocolOption) { // rare: a copy without them
		kept = make([]wire.Param, 0, len(st.Params))
		for _, p := range st.Params {
			if isProtocolOption(p) {
				unknown = append(unknown, p.Name)
			} else {
				kept = append(kept, p)
			}
		}
	}
	if st.Minor > 0 || len(unknown) > 0 {
		msg := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}
		if _, err := d.conn.Write(wire.Append(nil, msg)); err != nil {
			return nil, err
		}
	}
	st.Params = kept
	return kept, nil
}

// isProtocolOption says p is a _pq_. protocol option, not a setting.
func isProtocolOption(p wire.Param) bool { return strings.HasPrefix(p.Name, "_pq_.") }

// authenticate proves who the client is: trust lets everyone in;
// passthrough asks for a cleartext password and has the upstream check it;
// cert takes the TLS client certificate's name; scram-sha-256, md5 and
// plain check the client against auth_file here, costing the server
// nothing; hba picks one of these (or reject, peer) per client.
func (d *door) authenticate(ctx context.Context, c session.Client) error {
	switch d.cfg.Auth {
	case config.AuthTrust:
		return nil
	case config.AuthPassthrough:
		return d.passthrough(ctx, c)
	case config.AuthCert:
		return d.certificate(c)
	case config.AuthHBA:
		return d.byHBA(ctx, c)
	}
	return d.exchange(ctx, c, d.cfg.Auth)
}

// exchange checks c with method (scram-sha-256, md5 or plain) against its
// stored secret: auth_file's, else auth_query's. Anything else is refused,
// never let through.
func (d *door) exchange(ctx context.Context, c session.Client, method config.AuthMode) error {
	secret, found, err := d.secret(ctx, c)
	if err != nil {
		return err
	}
	x := auth.Exchange{W: d.conn, R: c.Reader, User: c.User, Secret: secret, Found: found, Decoy: d.cfg.Decoy, Binding: d.binding}
	if d.cfg.Learned != nil {
		x.Learned = func(cred backend.Credential) { d.cfg.Learned.Put(c.User, cred) }
	}
	switch method {
	case config.AuthSCRAM:
		err = x.SCRAM()
	case config.AuthMD5:
		err = x.MD5()
	case config.AuthPlain:
		// A unix socket never crosses a network; over TCP the
		// configuration requires TLS, but a reload may turn it off.
		if !d.tls && !d.local {
			return d.refuse(reason.CleartextNeedsTLS)
		}
		err = x.Cleartext()
	default:
		err = auth.ErrFailed
	}
	return d.authFailed(c, err)
}

// certificate admits a client whose verified TLS client certificate names
// it (common name = user), as PostgreSQL's cert method.
func (d *door) certificate(c session.Client) error {
	switch cn := d.certName(); {
	case cn == "":
		return d.refuse(reason.NoClientCert)
	case cn != c.User:
		d.slowDown()
		return d.refuse(reason.CertUserMismatch, c.User)
	}
	return nil
}

// peerCert is the client's verified TLS certificate; nil without one.
func (d *door) peerCert() *x509.Certificate {
	if tc, ok := d.conn.(*tls.Conn); ok {
		if peers := tc.ConnectionState().PeerCertificates; len(peers) > 0 {
			return peers[0]
		}
	}
	return nil
}

// certName is the common name of the client's verified TLS certificate;
// "" without one.
func (d *door) certName() string {
	if cert := d.peerCert(); cert != nil {
		return cert.Subject.CommonName
	}
	return ""
}

// authFailed answers a failed exchange: 28P01 with one message for every
// failed proof, 08P01 for a client that broke the exchange.
func (d *door) authFailed(c session.Client, err error) error {
	var pe *auth.ProtocolError
	switch {
	case err == nil:
		d.passed()
		return nil
	case errors.Is(err, auth.ErrFailed):
		d.slowDown()
		d.cfg.Relay.Fatal(d.conn, reason.AuthFailed, c.User)
		d.refused(reason.AuthFailed.Code(), reason.AuthFailed.Log())
	case errors.As(err, &pe):
		d.cfg.Relay.Fatal(d.conn, reason.AuthProtocol, pe.Error())
		d.refused(reason.AuthProtocol.Code(), pe.Error())
	}
	return err
}

// passthrough asks for a cleartext password and has the upstream check it.
func (d *door) passthrough(ctx context.Context, c session.Client) error {
	pw, err := auth.RequestPassword(d.conn, c.Reader)
	if err != nil {
		if errors.Is(err, auth.ErrNoPassword) {
			d.cfg.Relay.Fatal(d.conn, reason.EmptyPassword, c.User)
			d.refused(reason.EmptyPassword.Code(), reason.EmptyPassword.Log())
			return err
		}
		return d.authFailed(c, err)
	}
	if err := d.cfg.Verify(ctx, c.Database, c.User, pw); err != nil {
		r, code, msg := session.Classify(err)
		if r == reason.ServerRefused {
			d.slowDown() // the server refused the password
		}
		d.cfg.Relay.SendError(d.conn, wire.SeverityFatal, err)
		d.refused(code, msg)
		return err
	}
	d.passed()
	return nil
}

// slowDown waits before a failed login is answered, longer for each
// failure from the client's address (auth.Throttle), but never past the
// login deadline.
func (d *door) slowDown() {
	if d.cfg.Throttle == nil {
		return
	}
	wait := d.cfg.Throttle.Failed(d.host(), time.Now())
	if !d.loginBy.IsZero() {
		wait = min(wait, time.Until(d.loginBy))
	}
	if wait > 0 {
		d.log.Debug("failed login from an address that failed lately: answering later", "wait", wait)
		time.Sleep(wait)
	}
}

// passed forgets the client's address's failures.
func (d *door) passed() {
	if d.cfg.Throttle != nil {
		d.cfg.Throttle.Succeeded(d.host())
	}
}

func (d *door) host() string { return HostOf(d.remote) }

// forwardCancel handles a CancelRequest connection: the key's client here,
// or in a fleet the instance its key names (cancel.Registry). PostgreSQL
// answers nothing, whether or not the key was known, and so do we; the
// connection closes once the cancel is on its way.
func (d *door) forwardCancel(ctx context.Context, req pgproto3.CancelRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := d.cfg.Relay.Cancels.Cancel(ctx, req.ProcessID, req.SecretKey)
	if err != nil {
		d.log.Warn("cancel request not delivered", "outcome", out, "err", err)
	}
	d.log.Debug("cancel request", "outcome", out)
	return err
}

// errNoRoute is why a client of an unknown database was refused.
// refuse ends a login pgvalve refuses for r: the client is told FATAL
// (r's message filled in with args), it is logged, and the error returned
// ends the front door.
func (d *door) refuse(r reason.Reason, args ...any) error {
	d.cfg.Relay.Fatal(d.conn, r, args...)
	d.refused(r.Code(), r.Log())
	return errors.New(r.Log())
}

// refused logs a login pgvalve refused: the SQLSTATE and text the client
// was told (never a password); d.log names the client, user and database.
func (d *door) refused(code, why string) {
	d.log.Info("login refused", "code", code, "reason", why)
}

func errNoRoute(db string) error { return fmt.Errorf("no route for database %q", db) }
