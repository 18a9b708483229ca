package http

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/uts-events/uts/internal/httpstatus"
)

// logRequests logs each request at debug level. It logs no header: Authorization carries
// secrets.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := httpstatus.Of(w)
		defer func() {
			logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.Status),
				slog.Duration("duration", time.Since(start)))
		}()
		next.ServeHTTP(rec, r)
	})
}

// recoverPanics turns a panic into a logged 500, so one bad request cannot take the process
// down. A panic after the response started can only abort the connection.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httpstatus.Of(w)
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p) // a deliberate abort: net/http closes the connection quietly
			}
			logger.ErrorContext(r.Context(), "panic serving request",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			if rec.Status != 0 {
				panic(http.ErrAbortHandler)
			}
			writeStatusError(rec, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(rec, r)
	})
}

// unmatchedRoute answers a request that no route of api matches with a JSON 404 or 405,
// like every other error, instead of the mux's plain text. It is served under "/", which
// the mux picks only when no route matches, so that a request is routed once; an earlier
// form asked api before every request and then let it route the request again. It asks api
// which error the mux would give (a 405, with its Allow header, when the path has routes
// for other methods), and that also leaves Request.Pattern empty, as the metrics expect of
// a request no route matched.
func unmatchedRoute(api *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := &statusProbe{header: w.Header()}
		api.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			writeStatusError(w, probe.status, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
		default:
			writeStatusError(w, http.StatusNotFound, fmt.Sprintf("no route for %s", r.URL.Path))
		}
	})
}

// statusProbe catches the status of the mux's plain-text error and drops its body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) WriteHeader(code int) { p.status = code }

func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
