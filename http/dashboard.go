package http

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

// dashboardFiles is the live dashboard: plain HTML, CSS and JavaScript built into the binary,
// so the page works offline and loads nothing from elsewhere.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardPolicy lets the page load only its own files and talk only to this server: a
// proof that it uses no CDN, and a wall against script injected through event data.
const dashboardPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func handleDashboard() http.HandlerFunc {
	page, err := fs.ReadFile(dashboardFiles, "dashboard/index.html")
	if err != nil {
		panic("dashboard: index.html is not embedded: " + err.Error())
	}
	return func(w http.ResponseWriter, r *http.Request) {
		setDashboardHeaders(w, "text/html; charset=utf-8")
		_, _ = w.Write(page)
	}
}

// handleDashboardAsset serves the page's script and style sheet. Caching is left to
// revalidation (no-cache) so that a new binary's page never runs an old script.
func handleDashboardAsset() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		body, err := fs.ReadFile(dashboardFiles, path.Join("dashboard", name))
		if err != nil || name == "index.html" {
			writeStatusError(w, http.StatusNotFound, "no dashboard file "+name)
			return
		}
		contentType := mime.TypeByExtension(path.Ext(name))
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		setDashboardHeaders(w, contentType)
		_, _ = w.Write(body)
	}
}

func setDashboardHeaders(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", dashboardPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
}
