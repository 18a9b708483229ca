package publisher

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/uts-events/uts"
)

// StatusError is an answer outside 2xx. For 422 the aggregator names the fields at fault.
type StatusError struct {
	Status  int
	Message string           // the answer's "error", or its body when not JSON
	Details []uts.FieldError // for 422
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, d := range e.Details {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Details)-i)
			break
		}
		if d.In != "" {
			fmt.Fprintf(&b, "; %s parameter %s: %s", d.In, d.Field, d.Message)
			continue
		}
		fmt.Fprintf(&b, "; event %d %s: %s", d.Index, d.Field, d.Message)
	}
	return b.String()
}

// Temporary reports whether the request may succeed when repeated.
func (e *StatusError) Temporary() bool { return retryable(e.Status) }

func newStatusError(status int, body []byte) *StatusError {
	var answer struct {
		Error   string           `json:"error"`
		Details []uts.FieldError `json:"details"`
	}
	if err := json.Unmarshal(body, &answer); err == nil && answer.Error != "" {
		return &StatusError{Status: status, Message: answer.Error, Details: answer.Details}
	}
	const limit = 200
	msg := strings.TrimSpace(string(body))
	if len(msg) > limit {
		msg = msg[:limit] + "…"
	}
	return &StatusError{Status: status, Message: msg}
}
