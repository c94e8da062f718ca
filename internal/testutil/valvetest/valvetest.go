// Package valvetest starts pgvalve in-process on a free loopback port for
// integration tests, and stops it when the test ends.
package valvetest

import (
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/session"
)

// Server is a running in-process pgvalve.
type Server struct {
	App  *app.App
	Addr *net.TCPAddr
	stop func()
}

// Start runs pgvalve with cfg (its Listen is replaced by a free loopback
// port, and its unix socket is off unless cfg names a directory other
// than the default) until the test ends. Logs go to the test log when -v is given.
func Start(t testing.TB, cfg config.Config) *Server {
	t.Helper()
	return StartWithKnobs(t, cfg, nil)
}

// StartWithKnobs is Start with test seams that break invariants on purpose.
func StartWithKnobs(t testing.TB, cfg config.Config, knobs *session.Knobs) *Server {
	t.Helper()
	return start(t, cfg, knobs, nil, slog.LevelDebug)
}

// StartAt is Start logging at level, as pgvalve run --log-level does: a
// benchmark of what a client costs counts only the log lines a deployment
// at that level writes (Start logs everything, even unread).
func StartAt(t testing.TB, cfg config.Config, level slog.Level) *Server {
	t.Helper()
	return start(t, cfg, nil, nil, level)
}

// StartLogged is Start that also writes pgvalve's log to logs, as JSON
// lines (log/slog's JSONHandler), for tests of what it logs. logs must be
// safe for concurrent writes.
func StartLogged(t testing.TB, cfg config.Config, logs io.Writer) *Server {
	t.Helper()
	return start(t, cfg, nil, logs, slog.LevelDebug)
}

func start(t testing.TB, cfg config.Config, knobs *session.Knobs, logs io.Writer, level slog.Level) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.UnixSocketDir == config.Default().UnixSocketDir {
		// Not /tmp, shared with every other test and the machine's own
		// poolers: a test that wants the socket names a directory of its own.
		cfg.UnixSocketDir = ""
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valvetest: config: %v", err)
	}
	var w io.Writer = io.Discard
	if testing.Verbose() || os.Getenv("PGVALVE_TEST_LOG") != "" {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if logs != nil {
		h = slog.NewMultiHandler(h, slog.NewJSONHandler(logs, opts))
	}
	log := slog.New(h)
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatalf("valvetest: %v", err)
	}
	a.SetKnobs(knobs)
	ln, err := a.Listen()
	if err != nil {
		t.Fatalf("valvetest: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	s := &Server{App: a, Addr: ln.Addr().(*net.TCPAddr)}
	s.stop = func() {
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		select {
		case <-closed:
			if err := <-done; err != nil {
				t.Errorf("valvetest: serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("valvetest: pgvalve did not stop within 30s")
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts pgvalve down and waits for it; safe to call twice.
func (s *Server) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// URL is a connection URL for user/password/database through pgvalve.
func (s *Server) URL(user, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: s.Addr.String(),
		Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// Port is the listening port.
func (s *Server) Port() int { return s.Addr.Port }

// PoolStats returns the named pool's stats ("db/user").
func (s *Server) PoolStats(name string) (app.PoolStats, bool) {
	for _, st := range s.App.Stats() {
		if st.Name == name {
			return st, true
		}
	}
	return app.PoolStats{}, false
}

// WaitIdle waits until every pool is at rest: no leased, waiting,
// connecting or closing servers. It fails the test with the last stats
// after timeout.
func (s *Server) WaitIdle(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		busy := false
		stats := s.App.Stats()
		for _, st := range stats {
			if st.ServersActive != 0 || st.ClientsWaiting != 0 || st.ServersConnecting != 0 || st.ServersClosing != 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pools not idle after %s: %+v", timeout, stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
