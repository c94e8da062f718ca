package backend

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// urlTLSKeys are the libpq keywords with which an upstream URL takes its
// TLS into its own hands: pgconn then reads them as libpq would, and
// server_tls_* does not apply to that route.
var urlTLSKeys = []string{"sslmode", "sslrootcert", "sslcert", "sslkey"}

func urlNamesTLS(params map[string]string) bool {
	for _, k := range urlTLSKeys {
		if _, ok := params[k]; ok {
			return true
		}
	}
	return false
}

// setTLS replaces the TLS pgconn chose for each host with attempts'
// (pgconn lists a host once per attempt, as libpq's prefer and allow try
// twice). A unix socket gets plaintext, as in libpq.
func setTLS(pcfg *pgconn.Config, attempts func(host string) []*tls.Config) {
	type addr struct {
		host string
		port uint16
	}
	var hosts []addr
	all := append([]*pgconn.FallbackConfig{{Host: pcfg.Host, Port: pcfg.Port}}, pcfg.Fallbacks...)
	for _, fb := range all {
		if a := (addr{fb.Host, fb.Port}); len(hosts) == 0 || hosts[len(hosts)-1] != a {
			hosts = append(hosts, a)
		}
	}
	var out []*pgconn.FallbackConfig
	for _, h := range hosts {
		tries := []*tls.Config{nil}
		if network, _ := pgconn.NetworkAddress(h.host, h.port); network != "unix" {
			tries = attempts(h.host)
		}
		for _, c := range tries {
			out = append(out, &pgconn.FallbackConfig{Host: h.host, Port: h.port, TLSConfig: c})
		}
	}
	pcfg.Host, pcfg.Port, pcfg.TLSConfig = out[0].Host, out[0].Port, out[0].TLSConfig
	pcfg.Fallbacks = out[1:]
}

// TLSError is a login that failed at TLS itself: the server's certificate
// did not verify, the server refused the TLS that server_tls_sslmode
// requires, or it rejected pgvalve's handshake (its certificate, say).
// Trying again changes nothing until the configuration or the server does.
type TLSError struct {
	Addr string // host:port as configured
	Err  error  // what went wrong, without pgconn's wrapping
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("server TLS failed (%s): %v", e.Addr, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// tlsFailure returns err as a *TLSError when the login's last attempt
// failed at TLS, else err. pgconn joins the errors of every attempt
// (sslmode=prefer tries TLS, then the clear); only the last says why the
// login failed.
func tlsFailure(err error, cfg Config) error {
	addr := net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	last := lastAttempt(err)
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	switch {
	case last != err:
		if tlsErr := tlsFailure(last, cfg); tlsErr != last {
			return tlsErr
		}
	case errors.As(err, &verify):
		return &TLSError{Addr: addr, Err: fmt.Errorf("certificate not accepted: %w", verify.Err)}
	case errors.As(err, &op) && op.Op == "remote error":
		// An alert the server sent during the handshake.
		return &TLSError{Addr: addr, Err: fmt.Errorf("the server refused the handshake: %w", op.Err)}
	case strings.Contains(err.Error(), "server refused TLS connection"):
		// pgconn's words when the server answers SSLRequest with N; it
		// has no error type for it.
		return &TLSError{Addr: addr, Err: errors.New("the server does not accept TLS")}
	}
	return err
}

// lastAttempt is the error of the last of the attempts err joins, or err.
func lastAttempt(err error) error {
	for e := err; e != nil; {
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			if errs := joined.Unwrap(); len(errs) > 0 {
				return lastAttempt(errs[len(errs)-1])
			}
			return err
		}
		e = errors.Unwrap(e)
	}
	return err
}
