package uts

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it. The HTTP layer maps each kind
// to a status code in one place; everything below it only says which kind an error is.
type Kind int

const (
	KindInternal     Kind = iota // a bug or an unexpected failure: 500
	KindMalformed                // the body is not JSON: 400
	KindInvalid                  // JSON that breaks the schema: 422
	KindTooLarge                 // over a size limit: 413
	KindUnsupported              // not a JSON content type: 415
	KindUnauthorized             // missing or wrong token: 401
	KindUnavailable              // full queue or a backend down; retry later: 503
	KindNotFound                 // no such resource (a subscription): 404
	KindConflict                 // clashes with what exists (a subscription's body, a cursor going back): 409
	KindTimeout                  // the request did not arrive in time (a body sent too slowly): 408
)

// FieldError names one bad field of one event in a batch, or, with In set, one bad query
// parameter.
type FieldError struct {
	Index   int    `json:"index"`
	Field   string `json:"field"`
	Message string `json:"message"`
	// In is "query" for a query parameter, which belongs to no event; empty for a field of
	// an event.
	In string `json:"in,omitempty"`
}

// MarshalJSON leaves index out of a query parameter's error: an index 0 there would point
// at the batch's first event, which is not at fault.
func (f FieldError) MarshalJSON() ([]byte, error) {
	if f.In == "" {
		type plain FieldError
		return json.Marshal(plain(f))
	}
	return json.Marshal(struct {
		Field   string `json:"field"`
		Message string `json:"message"`
		In      string `json:"in"`
	}{f.Field, f.Message, f.In})
}

// Error is an error with a Kind, and for KindInvalid the fields at fault.
type Error struct {
	Kind    Kind
	Message string
	Details []FieldError
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps err as KindUnavailable: the caller should retry later.
func Unavailable(message string, err error) *Error {
	return &Error{Kind: KindUnavailable, Message: message, Err: err}
}

// KindOf returns the kind of err, KindInternal where err carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
