// Package web serves pgvalve's live page and its JSON API: what the on-call
// engineer opens to see, at a glance, whether the pools keep up, who holds
// the servers and what pgvalve itself thinks is wrong.
//
// Everything it shows comes from an observe.Source. The page's charts need
// a past, which the Source does not keep: a sampler (Server.Run) reads the
// Source once per Options.Interval into a bounded ring per pool.
package web

import (
	"context"
	"net/http"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Interval is how often the sampler reads the Source for the history;
	// default 1s.
	Interval time.Duration
	// Keep is how much history each pool keeps; default 15m. A pool
	// gone from the Source for that long is forgotten.
	Keep time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 15 * time.Minute
	}
	if o.Keep < o.Interval {
		o.Keep = o.Interval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server is the page and the API over one Source. It is an http.Handler;
// its history fills only while Run runs.
type Server struct {
	src  observe.Source
	opts Options
	hist *history
	mux  *http.ServeMux
}

// New returns a Server over src. Call Run to sample the history.
func New(src observe.Source, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		src:  src,
		opts: opts,
		hist: newHistory(int(opts.Keep/opts.Interval), opts.Keep),
		mux:  http.NewServeMux(),
	}
	s.routes()
	return s
}

// NewHandler returns a Server over src whose sampler runs until ctx ends.
func NewHandler(ctx context.Context, src observe.Source, opts Options) http.Handler {
	s := New(src, opts)
	go s.Run(ctx)
	return s
}

// Run samples the Source into the history once per Options.Interval, the
// first time at once, until ctx ends; it returns ctx's error.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) sample() {
	s.hist.add(s.opts.Now(), s.src.Pools())
}

// ServeHTTP serves the page at / and the API under /api/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", s.servePage)
	s.mux.HandleFunc("GET /page/{file}", s.serveAsset)
	s.mux.HandleFunc("GET /api/{$}", s.apiIndex)
	for _, e := range endpoints {
		s.mux.HandleFunc("GET /api/"+e.Name, s.api(e.build))
	}
}
