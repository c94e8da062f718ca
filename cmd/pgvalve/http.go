package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/web"
)

// healthz answers a readiness check: 200 while pgvalve takes new clients,
// 503 once it drains. An unreachable PostgreSQL is not a reason to fail
// it: pgvalve queues clients and rides through outages, and a check that
// failed every pgvalve at once would refuse them all instead.
func healthz(w http.ResponseWriter, accepting bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !accepting {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// serveHTTP serves /metrics, /healthz, the live page and /api/ on ln, the
// listener of metrics_listen (nil: off), until the returned func runs.
func (s *server) serveHTTP(a *app.App, ln net.Listener) (stop func()) {
	if ln == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := a.Source()
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.NewHandler(src, metrics.WithVersion(version), metrics.WithStart(time.Now())))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { healthz(w, a.Accepting()) })
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
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
			<-done
		})
	}
}
