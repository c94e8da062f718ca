package app

import (
	"errors"
	"fmt"
	"net"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/hba"
	"github.com/pgvalve/pgvalve/internal/listener"
)

// Listeners is what Listen binds: the TCP address, and the unix socket
// .s.PGSQL.<port> in unix_socket_dir (nil when that is empty). It is a
// net.Listener for the TCP side; Close closes both, and Serve serves both.
type Listeners struct {
	net.Listener
	Unix net.Listener
}

// Close closes both listeners; closing the unix one removes its file.
func (l *Listeners) Close() error {
	err := l.Listener.Close()
	if l.Unix != nil {
		err = errors.Join(err, l.Unix.Close())
	}
	return err
}

// Listen binds the configured address and, unless unix_socket_dir is
// empty, the unix socket named after the port bound (so a listen port of
// 0, as in tests, gets a socket of its own).
func (a *App) Listen() (net.Listener, error) {
	ln, err := listener.TCP(a.listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.listen, err)
	}
	cfg := a.config()
	ls := &Listeners{Listener: ln}
	if cfg.UnixSocketDir == "" {
		return ls, nil
	}
	ul, err := listener.Unix(cfg.UnixSocketDir, ln.Addr().(*net.TCPAddr).Port, cfg.UnixSocketMode)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("unix_socket_dir %s: %w", cfg.UnixSocketDir, err)
	}
	ls.Unix = ul
	return ls, nil
}

// serveUnix serves the unix socket of ln, if any, as Serve serves TCP,
// until accepting ends; wait waits for it.
func (a *App) serveUnix(ln net.Listener, lc listener.Config) (wait func()) {
	ls, ok := ln.(*Listeners)
	if !ok || ls.Unix == nil {
		return func() {}
	}
	a.log.Info("pgvalve listening", "addr", ls.Unix.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := listener.Serve(a.accepting, ls.Unix, lc); err != nil {
			a.log.Error("unix socket listener stopped", "err", err)
		}
	}()
	return func() { <-done }
}

// checkHBA refuses rules the configuration cannot serve: methods that
// check passwords without auth_file, certificates without client
// certificate verification. Lines that can never match are only logged.
func (a *App) checkHBA(rules *hba.Rules, cfg config.Config) error {
	var errs []error
	for _, r := range rules.Rules() {
		at := fmt.Sprintf("%s:%d", rules.File, r.Line)
		switch {
		case r.Method.NeedsSecret() && cfg.AuthFile == "":
			errs = append(errs, fmt.Errorf("%s: %s checks passwords against auth_file; set auth_file", at, r.Method))
		case (r.Method == hba.Cert || r.ClientCert != hba.CertNone) && !cfg.ClientTLS.VerifyPeer():
			errs = append(errs, fmt.Errorf("%s: client certificates need client_tls_sslmode verify-ca or verify-full", at))
		case r.Type == hba.HostSSL && !cfg.ClientTLS.On():
			a.log.Warn("auth_hba_file: a hostssl line cannot match while client_tls_sslmode is disable", "line", at)
		case r.Type == hba.Local && cfg.UnixSocketDir == "":
			a.log.Warn("auth_hba_file: a local line cannot match while unix_socket_dir is empty", "line", at)
		}
	}
	return errors.Join(errs...)
}

// ListenOn serves listeners another pgvalve handed over (online restart):
// tcp, and unix (nil: none), the socket file another's. Closing them ends
// this process's use of them; the file is removed only when this process
// stops for good (see KeepFile).
func ListenOn(tcp, unix net.Listener) *Listeners {
	if ul, ok := unix.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true) // this process owns the file now
	}
	return &Listeners{Listener: tcp, Unix: unix}
}

// KeepFile makes Close leave the unix socket's file in place: a process
// that hands its listeners to another still closes its copies, and the
// other now serves the file.
func (l *Listeners) KeepFile() {
	if ul, ok := l.Unix.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
}
