package metrics_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/uts-events/uts/metrics"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// standardPrefixes are the Go runtime's and the process's collectors, registered beside
// ours; they follow the conventions in their own namespaces.
var standardPrefixes = []string{"go_", "process_"}

func TestMetricNamesFollowPrometheusConventions(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	a.publish(t, newEvents("names", 5))
	for name, family := range a.scrape(t) {
		if !snakeCase.MatchString(name) {
			t.Errorf("%s: not snake_case", name)
		}
		if slices.ContainsFunc(standardPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		if !strings.HasPrefix(name, "uts_") {
			t.Errorf("%s: lacks the uts_ prefix", name)
		}
		isCounter := family.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s (%s): counters, and only counters, end in _total", name, family.GetType())
		}
		if strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("%s: a duration is in seconds, the base unit", name)
		}
		if family.GetHelp() == "" {
			t.Errorf("%s: no help text", name)
		}
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if !snakeCase.MatchString(l.GetName()) {
					t.Errorf("%s: label %q not snake_case", name, l.GetName())
				}
			}
		}
	}
}

// TestLabelValuesStayBounded publishes to many topics and requests many random paths: no
// topic, path or id may become a label value.
func TestLabelValuesStayBounded(t *testing.T) {
	t.Parallel()
	a := newAggregator(t)
	var random []string
	for i := range 40 {
		a.publish(t, newEvents(fmt.Sprintf("topic-%d", i), 3))
		path := fmt.Sprintf("/no-such-%d-%x", i, rand.Uint64())
		random = append(random, path)
		if code, _ := a.do(t, "GET", path, readToken, nil); code != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", path, code)
		}
		if code, _ := a.do(t, "DELETE", "/events", readToken, nil); code != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE /events: %d, want 405", code)
		}
		a.do(t, "GET", "/events?topic="+fmt.Sprintf("topic-%d", i), readToken, nil)
		a.do(t, "GET", "/docs/"+path, "", nil) // a pattern with a trailing slash matches any path below it
	}

	allowed := map[string][]string{
		"outcome": metrics.Outcomes,
		// Exactly the routes this test requested, by pattern, plus one value for no route.
		"route": {"POST /publish", "GET /events", "GET /docs/", "GET /metrics", "unmatched"},
	}
	seen := map[string]map[string]bool{}
	for name, family := range a.scrape(t) {
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if seen[l.GetName()] == nil {
					seen[l.GetName()] = map[string]bool{}
				}
				seen[l.GetName()][l.GetValue()] = true
				switch l.GetName() {
				case "code":
					if !regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(l.GetValue()) {
						t.Errorf("%s: code label %q is not a status code", name, l.GetValue())
					}
				case "outcome", "route":
					if !slices.Contains(allowed[l.GetName()], l.GetValue()) {
						t.Errorf("%s: %s label %q is outside %q", name, l.GetName(), l.GetValue(), allowed[l.GetName()])
					}
				default:
					if !slices.ContainsFunc(standardPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
						t.Errorf("%s: unexpected label %q", name, l.GetName())
					}
				}
			}
		}
	}
	for _, path := range random {
		for name, values := range seen {
			for value := range values {
				if strings.Contains(value, strings.TrimPrefix(path, "/")) {
					t.Errorf("label %s=%q carries the requested path %s", name, value, path)
				}
			}
		}
	}
	if !seen["route"]["unmatched"] || !seen["route"]["GET /docs/"] {
		t.Errorf("%d route values: want the 404s and 405s as unmatched and /docs/… as its pattern", len(seen["route"]))
	}
}
