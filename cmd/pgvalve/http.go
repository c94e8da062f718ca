package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/web"
)

// serveHTTP serves /metrics, the live page and /api/ on metrics_listen
// until the returned func runs; it returns nil, nil when metrics_listen is
// off.
func (s *server) serveHTTP(a *app.App) (stop func(), err error) {
	if s.cfg.MetricsListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := a.Source()
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.NewHandler(src, metrics.WithVersion(version), metrics.WithStart(time.Now())))
	mux.Handle("/", web.NewHandler(ctx, src, web.Options{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	s.log.Info("metrics, live page and /api/ listening", "addr", ln.Addr().String())
	return func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
