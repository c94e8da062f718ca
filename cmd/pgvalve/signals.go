package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/sdnotify"
	"github.com/pgvalve/pgvalve/internal/takeover"
)

// server runs one pgvalve and answers its signals (README, "Signals").
type server struct {
	cfg   config.Config // in force: a reload replaces it
	log   *slog.Logger
	level *slog.LevelVar // the logger's; a reload sets it
	ready func()         // runs once pgvalve listens
	// reload reads the configuration again; nil when there is no file.
	reload func() (config.Config, error)
	// takeover: take over from a running pgvalve instead of binding.
	takeover bool
}

// serve runs pgvalve until SIGTERM (drain: running transactions finish, up
// to shutdown_timeout) or SIGINT (close every client at once). SIGHUP
// reloads the configuration, SIGUSR1 pauses (PgBouncer's PAUSE), SIGUSR2
// resumes; none of these three ever ends pgvalve.
func (s *server) serve() error {
	a, err := app.New(s.cfg, s.log)
	if err != nil {
		return err
	}
	// The console's RELOAD and SHUTDOWN run here, in the signal loop, so
	// they never race SIGHUP or SIGTERM.
	loop, leftLoop := context.WithCancel(context.Background())
	defer leftLoop()
	reloads := make(chan chan error)
	shutdown := make(chan struct{}, 1)
	a.SetHooks(app.Hooks{Version: version,
		Reload: func() error {
			done := make(chan error, 1)
			select {
			case reloads <- done:
				return <-done
			case <-loop.Done():
				return errors.New("pgvalve is stopping")
			}
		},
		Shutdown: func() {
			select {
			case shutdown <- struct{}{}:
			default:
			}
		}})
	b, from, err := s.listen(a)
	if err != nil {
		return err
	}
	stopHTTP := s.serveHTTP(a, b.http)
	defer stopHTTP()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- a.Serve(b.clients) }()
	s.ready()
	s.notify(sdnotify.Ready("serving on " + b.clients.Addr().String()))
	// A takeover this process makes ends (taking), then it offers its own
	// to the next new process; both goroutines end before serve returns.
	offering, stopOffer := context.WithCancel(context.Background())
	took := make(chan *takeover.Conn)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stopOffer()
	taking := make(chan error, 1)
	if from != nil {
		bg.Go(func() {
			// Stopping before the old process is done ends the conversation.
			defer context.AfterFunc(offering, func() { from.Close() })()
			taking <- s.taken(a, from)
		})
	} else {
		bg.Go(func() { s.offer(offering, b, took) })
	}
	for {
		select {
		case err := <-served:
			return err
		case err := <-taking:
			if err != nil {
				s.log.Warn("takeover", "err", err)
			}
			bg.Go(func() { s.offer(offering, b, took) })
		case c := <-took:
			s.notify(sdnotify.Stopping())
			s.handOver(a, b, c, stopHTTP, sigs)
			return <-served
		case done := <-reloads:
			done <- s.reloadConfig(a)
		case <-shutdown:
			s.log.Info("SHUTDOWN from the admin console: closing every client")
			s.notify(sdnotify.Stopping())
			a.Close()
			return <-served
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				_ = s.reloadConfig(a)
			case syscall.SIGUSR1:
				a.Pause()
			case syscall.SIGUSR2:
				a.Resume()
			default:
				s.stop(a, sig, sigs)
				return <-served
			}
		}
	}
}

// notify logs a failure to tell systemd how pgvalve is doing; under
// systemd, a READY=1 that does not arrive fails the start.
func (s *server) notify(sent bool, err error) {
	if err != nil {
		s.log.Warn("could not tell systemd", "err", err)
	} else if sent {
		s.log.Debug("told systemd")
	}
}

// stop ends pgvalve for SIGTERM or SIGINT. While SIGTERM drains, a second
// SIGTERM or SIGINT stops waiting; other signals are ignored then.
func (s *server) stop(a *app.App, sig os.Signal, sigs <-chan os.Signal) {
	s.notify(sdnotify.Stopping())
	if sig != syscall.SIGTERM {
		s.log.Info("SIGINT: closing every client")
		a.Close()
		return
	}
	s.log.Info("SIGTERM: draining", "shutdown_timeout", s.cfg.ShutdownTimeout)
	ctx, done := s.draining(sigs)
	defer done()
	a.Shutdown(ctx)
}

// draining is the context a drain runs under: it ends at shutdown_timeout,
// or at a SIGTERM or SIGINT, which stops waiting; other signals are
// ignored meanwhile. done releases it once the drain is over.
func (s *server) draining(sigs <-chan os.Signal) (ctx context.Context, done func()) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGTERM || sig == syscall.SIGINT {
					cancel()
					return
				}
				s.log.Info("shutting down: signal ignored", "signal", sig.String())
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() { cancel(); <-watched }
}

// reloadConfig answers SIGHUP. A file with any error changes nothing; each
// error is logged on its own line, with the file line it is about.
func (s *server) reloadConfig(a *app.App) error {
	if s.reload == nil {
		s.log.Info("SIGHUP: pgvalve was started without --config; nothing to reload")
		return errors.New("pgvalve was started without --config; nothing to reload")
	}
	s.log.Info("SIGHUP: reloading the configuration")
	s.notify(sdnotify.Reloading())
	defer func() { s.notify(sdnotify.Ready("serving; configuration reloaded")) }()
	cfg, err := s.reload()
	if err != nil {
		for _, e := range each(err) {
			s.log.Error("config not reloaded, nothing changed", "err", e)
		}
		return errors.New("RELOAD failed, see the log for the reasons; nothing changed")
	}
	setLevel(s.level, cfg.LogLevel) // first, so the reload's own lines obey it
	a.Reload(cfg)
	s.cfg = cfg
	return nil
}

// each splits an errors.Join into its errors.
func each(err error) []error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	return []error{err}
}
