package http

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/uts-events/uts"
)

// statusOf is the one place where an error kind becomes a status code.
func statusOf(kind uts.Kind) int {
	switch kind {
	case uts.KindMalformed:
		return http.StatusBadRequest
	case uts.KindInvalid:
		return http.StatusUnprocessableEntity
	case uts.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case uts.KindUnsupported:
		return http.StatusUnsupportedMediaType
	case uts.KindUnauthorized:
		return http.StatusUnauthorized
	case uts.KindUnavailable:
		return http.StatusServiceUnavailable
	case uts.KindNotFound:
		return http.StatusNotFound
	case uts.KindConflict:
		return http.StatusConflict
	case uts.KindTimeout:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// errorBody is every error response. Details is present exactly on 422s, so that a client
// can rely on it there.
type errorBody struct {
	Error   string           `json:"error"`
	Details []uts.FieldError `json:"details,omitempty"`
}

// writeError answers with err's status. Internal errors are logged and hidden from the
// client, whose message would otherwise leak implementation details.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	kind := uts.KindOf(err)
	status := statusOf(kind)
	body := errorBody{Error: "internal error"}
	var e *uts.Error
	if errors.As(err, &e) && kind != uts.KindInternal {
		body.Error = e.Message
		if kind == uts.KindInvalid {
			body.Details = e.Details
			if body.Details == nil {
				body.Details = []uts.FieldError{}
			}
		}
	}
	switch {
	case status >= 500:
		logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	default:
		logger.DebugContext(r.Context(), "request rejected", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
}

// writeStatusError answers with an error that has no kind (404, 405, a recovered panic).
func writeStatusError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, errorBody{Error: message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an encoding error now means the client went away.
	_ = newJSONEncoder(w).Encode(v)
}

// newJSONEncoder writes JSON as it is: payloads and messages keep their <, > and &, which
// HTML escaping would turn into \u003c and the like. No answer is HTML.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// invalidParam is the 422 for a bad query parameter. Its detail has no index: it names no
// event.
func invalidParam(field, message string) error {
	return &uts.Error{Kind: uts.KindInvalid, Message: "invalid query parameter " + field + ": " + message,
		Details: []uts.FieldError{{Field: field, Message: message, In: "query"}}}
}
