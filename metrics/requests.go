package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	series := &requestSeries{m: m}
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
			s := series.of(route, code)
			s.count.Inc()
			s.duration.Observe(time.Since(start).Seconds())
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeSeries are the two series one route and status code count into.
type routeSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type routeCode struct {
	route string
	code  int
}

// requestSeries keeps each (route, code) pair's series once looked up, so that a request
// costs one small map read instead of two WithLabelValues calls, each of which hashes its
// labels, checks them and locks the vector (issue #11: every request pays it). The map is
// replaced, never changed, so reads need no lock; the pairs are few (routes × the codes
// they answer) and stop growing after the first minutes.
type requestSeries struct {
	m     *Metrics
	mu    sync.Mutex // serialises adding a pair
	known atomic.Pointer[map[routeCode]routeSeries]
}

func (rs *requestSeries) of(route string, code int) routeSeries {
	key := routeCode{route, code}
	if known := rs.known.Load(); known != nil {
		if s, ok := (*known)[key]; ok {
			return s
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := rs.known.Load()
	if old != nil {
		if s, ok := (*old)[key]; ok {
			return s
		}
	}
	s := routeSeries{
		count:    rs.m.requests.WithLabelValues(route, strconv.Itoa(code)),
		duration: rs.m.requestDuration.WithLabelValues(route),
	}
	next := map[routeCode]routeSeries{key: s}
	if old != nil {
		maps.Copy(next, *old)
	}
	rs.known.Store(&next)
	return s
}
