// Package ui is the app's dashboard: one HTML page, its script and its
// style sheet, embedded in the binary and served as they are, with no build
// step and nothing fetched from elsewhere. The page polls /v1/status, by a
// relative URL so that it works under a server's /apps/NAME/ prefix, and
// draws the app from it: the topology as a graph, the instances and their
// tasks, lag and records/s, restores, module versions, the last dead
// letters and the routes.
package ui

import (
	"embed"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the page at /ui and its files at /ui/app.js and
// /ui/app.css, relative to wherever it is mounted; /ui/ redirects to /ui.
// Mount it at GET /ui, GET /ui/{$} and GET /ui/{file}. The files hold no data
// and no secret: the page reads everything from /v1/status, which asks
// for a token like the query API.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ctype := "static/index.html", "text/html; charset=utf-8"
		switch r.PathValue("file") {
		case "":
			if strings.HasSuffix(r.URL.Path, "/") {
				// The page's URLs are relative to /ui, not /ui/.
				http.Redirect(w, r, "../ui", http.StatusMovedPermanently)
				return
			}
		case "app.js":
			name, ctype = "static/app.js", "text/javascript; charset=utf-8"
		case "app.css":
			name, ctype = "static/app.css", "text/css; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		b, err := static.ReadFile(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Write(b)
	})
}
