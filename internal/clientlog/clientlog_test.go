package clientlog

import (
	"bytes"
	"log/slog"
	"testing"
)

func TestAClientsLazyLoggerWritesTheLinesTheEagerOneWould(t *testing.T) {
	var eager, lazy bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	lines := func(log *slog.Logger) {
		log.Debug("not written")
		log.Info("login refused", "code", "28P01")
		log = log.With("db", "app", "user", "alice")
		log.Warn("cancel request not delivered", "err", "gone")
		log.WithGroup("tls").Info("handshake failed", "err", "eof")
	}
	lines(slog.New(slog.NewTextHandler(&eager, opts)).With("client", "10.0.0.1:5000"))
	lines(With(slog.New(slog.NewTextHandler(&lazy, opts)), slog.String("client", "10.0.0.1:5000")))
	if eager.String() != lazy.String() {
		t.Fatalf("the lazy logger wrote\n%s\nwhere the eager one wrote\n%s", lazy.String(), eager.String())
	}
	if !bytes.Contains(lazy.Bytes(), []byte(`level=WARN msg="cancel request not delivered" client=10.0.0.1:5000 db=app user=alice err=gone`)) {
		t.Fatalf("a line lacks the client's attributes:\n%s", lazy.String())
	}
}
