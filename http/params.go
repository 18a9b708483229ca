package http

import (
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/uts-events/uts"
)

// onlyParams answers 422, naming every unknown query parameter, before next sees a request
// that has any parameter not in allowed.
func onlyParams(logger *slog.Logger, allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" { // most requests: no query to parse (Query allocates a map)
			next.ServeHTTP(w, r)
			return
		}
		var unknown []string
		for name := range r.URL.Query() {
			if !slices.Contains(allowed, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		sort.Strings(unknown)
		message := "is not a parameter of " + r.URL.Path
		if len(allowed) > 0 {
			message += "; it takes " + strings.Join(allowed, ", ")
		}
		details := make([]uts.FieldError, len(unknown))
		for i, name := range unknown {
			details[i] = uts.FieldError{Field: name, Message: message, In: "query"}
		}
		writeError(w, r, logger, &uts.Error{Kind: uts.KindInvalid, Details: details,
			Message: "unknown query parameter " + unknown[0] + ": " + message})
	})
}
