package subscriber

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/uts-events/uts"
)

// StatusError is an answer outside 2xx, with the aggregator's own words.
type StatusError struct {
	Method, URL string
	Status      int
	Message     string           // the answer's "error", or its body when not JSON
	Details     []uts.FieldError // what a 422 names
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, d := range e.Details {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Details)-i)
			break
		}
		if d.Field != "" {
			fmt.Fprintf(&b, "; %s: %s", d.Field, d.Message)
		} else {
			fmt.Fprintf(&b, "; %s", d.Message)
		}
	}
	return b.String()
}

// Temporary reports whether the request may succeed when repeated.
func (e *StatusError) Temporary() bool { return retryable(e.Status) }

func newStatusError(method, url string, status int, body []byte) *StatusError {
	var answer struct {
		Error   string           `json:"error"`
		Details []uts.FieldError `json:"details"`
	}
	if err := json.Unmarshal(body, &answer); err == nil && answer.Error != "" {
		return &StatusError{Method: method, URL: url, Status: status, Message: answer.Error, Details: answer.Details}
	}
	const limit = 200
	msg := strings.TrimSpace(string(body))
	if len(msg) > limit {
		msg = msg[:limit] + "…"
	}
	return &StatusError{Method: method, URL: url, Status: status, Message: msg}
}
