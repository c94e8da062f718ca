package web

import (
	"embed"
	"net/http"
	"path"
)

// The page is three files, embedded: no CDN, no build step, no network.
//
//go:embed page/index.html page/style.css page/app.js
var pageFS embed.FS

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	s.sendAsset(w, r, "index.html")
}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request) {
	s.sendAsset(w, r, r.PathValue("file"))
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

func (s *Server) sendAsset(w http.ResponseWriter, r *http.Request, name string) {
	ct, ok := contentTypes[path.Ext(name)]
	b, err := pageFS.ReadFile("page/" + name)
	if !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
	w.Write(b)
}
