// Package clientlog gives a client's log lines its attributes (address,
// database, user) without formatting them for lines never written.
package clientlog

import (
	"context"
	"log/slog"
	"slices"
)

// lazyAttrs is a handler that keeps a client's attributes (its address,
// then its database and user) aside and hands them to the handler under
// it only when a line is written. slog's own handlers format attributes
// as they are added, and at the default level most clients write no line
// at all: under pgbench -C that formatting was a twentieth of pgvalve's
// CPU. The lines written are the same.
type lazyAttrs struct {
	h     slog.Handler
	attrs []slog.Attr
}

// With is log with attrs added lazily.
func With(log *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(&lazyAttrs{h: log.Handler(), attrs: attrs})
}

func (l *lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return l.h.WithAttrs(l.attrs).Handle(ctx, r)
}

func (l *lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &lazyAttrs{h: l.h, attrs: append(slices.Clip(l.attrs), attrs...)}
}

func (l *lazyAttrs) WithGroup(name string) slog.Handler {
	return l.h.WithAttrs(l.attrs).WithGroup(name)
}
