package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/uts-events/uts/internal/httpstatus"
)

// unmatched is the route label of a request no pattern matched (a 404 or 405), so that
// requests for random paths all share one series.
const unmatched = "unmatched"

// Requests counts and times every request next serves, labelled by the ServeMux pattern
// that matched it ("GET /events"), never by the raw path.
//
// It wraps the whole API rather than hooking into the http package, so that package needs
// no metrics code at all. The pattern is read after next returns: net/http's ServeMux
// records it in the *Request it was given (Request.Pattern), and the API's middleware
// passes that same request down. A middleware that replaced the request (r.WithContext)
// would hide the pattern and make every route "unmatched"; this package's tests would
// catch it.
func (m *Metrics) Requests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &httpstatus.Recorder{ResponseWriter: w}
		defer func() {
			// A panic that got this far aborted the response (the API turns the others
			// into a 500 itself): it is counted as a 500 before it goes on.
			p := recover()
			code := rec.Status
			switch {
			case p != nil:
				code = http.StatusInternalServerError
			case code == 0:
				code = http.StatusOK // nothing written: net/http sends a 200
			}
			route := r.Pattern
			if route == "" {
				route = unmatched
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			m.requestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}
