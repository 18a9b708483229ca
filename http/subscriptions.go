package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/uts-events/uts"
)

// maxSubscriptionBody bounds a subscription's or a commit's body: MaxSubscriptionTopics
// topics of the longest name fit in it with room to spare.
const maxSubscriptionBody = 64 << 10

// subscriptionJSON is a subscription as the API shows it. Lag is absent from a commit's
// answer: a commit does not count it (see uts.Subscriptions.CommitSubscription).
type subscriptionJSON struct {
	uts.Subscription
	Lag *int64 `json:"lag,omitempty"`
}

func withLag(sub uts.Subscription) subscriptionJSON {
	return subscriptionJSON{Subscription: sub, Lag: &sub.Lag}
}

// subscriptionEvent and subscriptionEvents are the shape of a read's answer, which
// appendSubscriptionPage writes without reflection (eventjson_test.go holds the two equal).

// subscriptionEvent is an event as /events shows it, with its cursor: committing it says
// that the subscriber has handled this event and every one before it.
type subscriptionEvent struct {
	uts.StoredEvent
	Cursor uts.Cursor `json:"cursor"`
}

// subscriptionEvents is a read's answer. Cursor is the last event's, or the committed one
// when there is none: committing it is always right once the events are handled.
type subscriptionEvents struct {
	Events []subscriptionEvent `json:"events"`
	Cursor uts.Cursor          `json:"cursor"`
}

// subscriptionName reads the {name} of the path, refusing one that no subscription can have.
func subscriptionName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, uts.CheckSubscriptionName(name)
}

// handlePutSubscription creates a subscription (201), or finds the same one (200).
func handlePutSubscription(store uts.Subscriptions, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		spec, err := subscriptionSpec(w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		sub, created, err := store.CreateSubscription(r.Context(), spec)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, withLag(sub))
	}
}

// subscriptionSpec reads a PUT: {"topics": [...], "start": "earliest" | "latest"}, both
// optional; an empty body is {}.
func subscriptionSpec(w http.ResponseWriter, r *http.Request) (uts.SubscriptionSpec, error) {
	name, err := subscriptionName(r)
	if err != nil {
		return uts.SubscriptionSpec{}, err
	}
	fields, err := jsonObjectBody(w, r)
	if err != nil {
		return uts.SubscriptionSpec{}, err
	}
	spec := uts.SubscriptionSpec{Name: name}
	for key, raw := range fields {
		switch key {
		case "topics":
			if json.Unmarshal(raw, &spec.Topics) != nil {
				return spec, invalidField("topics", "must be an array of topic names; leave it out or [] for every topic")
			}
		case "start":
			var start string
			if json.Unmarshal(raw, &start) != nil {
				return spec, invalidField("start", `must be "earliest" or "latest"`)
			}
			spec.Start = uts.SubscriptionStart(start)
		default:
			return spec, invalidField(key, "is not a field of a subscription: topics and start are")
		}
	}
	return spec.Normalize()
}

// jsonObjectBody reads a small JSON object body into its fields. Not JSON is 400; JSON of
// another shape is 422. An empty body is the empty object.
func jsonObjectBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	body, err := readSmallBody(w, r, maxSubscriptionBody)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if !json.Valid(body) {
		return nil, uts.Errorf(uts.KindMalformed, "the body is not JSON")
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return nil, invalidField("body", "must be a JSON object")
	}
	return fields, nil
}

// readSmallBody reads a body of at most limit bytes: a subscription's, a few hundred bytes,
// too small for the publish path's memory budget and gzip to matter.
func readSmallBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	tooLarge := uts.Errorf(uts.KindTooLarge, "the body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return nil, tooLarge
	case err != nil:
		return nil, &uts.Error{Kind: uts.KindMalformed, Message: "the body could not be read", Err: err}
	}
	return body, nil
}

// invalidField is the 422 for a bad field of a request body.
func invalidField(field, message string) error {
	return &uts.Error{Kind: uts.KindInvalid, Message: "invalid field " + field + ": " + message,
		Details: []uts.FieldError{{Field: field, Message: message}}}
}

// handleSubscriptionEvents answers the events after the subscription's committed cursor,
// waiting for some with wait= as GET /events does. Reading commits nothing: the subscriber
// commits the cursor once it has handled the events, so that each is delivered at least once.
func handleSubscriptionEvents(store uts.Store, waiting waitSlots, shutdown <-chan struct{}, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := subscriptionName(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		params := r.URL.Query()
		limit := defaultPageLimit
		if raw := params.Get("limit"); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > maxPageLimit {
				writeError(w, r, logger, invalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d", maxPageLimit)))
				return
			}
			limit = n
		}
		wait, err := waitParam(params.Get("wait"))
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		sub, err := store.Subscription(r.Context(), name, false)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if wait > 0 {
			release, err := waiting.take()
			if err != nil {
				writeError(w, r, logger, err)
				return
			}
			defer release()
		}
		stored, err := readFeed(r.Context(), store, uts.EventQuery{Topics: sub.Topics, After: sub.Cursor, Limit: limit}, wait, shutdown)
		if err == nil {
			err = markExpired(r.Context(), w.Header(), store, sub.Topics, sub.Cursor)
		}
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("read subscription %s: %w", name, err))
			return
		}
		buf := getEventBuffer()
		defer putEventBuffer(buf)
		*buf = appendSubscriptionPage(*buf, stored, sub.Cursor)
		writeJSONBody(w, http.StatusOK, *buf)
	}
}

// handleCommitSubscription moves the committed cursor: {"cursor": C} forward only,
// {"cursor": C, "reset": true} anywhere.
func handleCommitSubscription(store uts.Subscriptions, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, cursor, reset, err := commitRequest(w, r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		sub, err := store.CommitSubscription(r.Context(), name, cursor, reset)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeJSON(w, http.StatusOK, subscriptionJSON{Subscription: sub})
	}
}

func commitRequest(w http.ResponseWriter, r *http.Request) (name string, cursor uts.Cursor, reset bool, err error) {
	if name, err = subscriptionName(r); err != nil {
		return
	}
	fields, err := jsonObjectBody(w, r)
	if err != nil {
		return
	}
	hasCursor := false
	for key, raw := range fields {
		switch key {
		case "cursor":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return name, cursor, reset, invalidField("cursor", "must be a cursor string from the subscription's events")
			}
			if cursor, err = uts.ParseCursor(s); err != nil {
				return name, cursor, reset, invalidField("cursor", "must be a cursor string from the subscription's events")
			}
			hasCursor = true
		case "reset":
			if json.Unmarshal(raw, &reset) != nil {
				return name, cursor, reset, invalidField("reset", "must be true or false")
			}
		default:
			return name, cursor, reset, invalidField(key, "is not a field of a commit: cursor and reset are")
		}
	}
	if !hasCursor {
		return name, cursor, reset, invalidField("cursor", "is required: the cursor of the last event handled")
	}
	return name, cursor, reset, nil
}

// subscriptionList is GET /subscriptions's answer.
type subscriptionList struct {
	Subscriptions []subscriptionJSON `json:"subscriptions"`
}

// handleListSubscriptions lists every subscription, by name, each with its lag.
func handleListSubscriptions(store uts.Subscriptions, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		subs, err := store.ListSubscriptions(r.Context())
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		answer := subscriptionList{Subscriptions: make([]subscriptionJSON, len(subs))}
		for i, sub := range subs {
			answer.Subscriptions[i] = withLag(sub)
		}
		writeJSON(w, http.StatusOK, answer)
	}
}

// handleGetSubscription answers one subscription, with its lag.
func handleGetSubscription(store uts.Subscriptions, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := subscriptionName(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		sub, err := store.Subscription(r.Context(), name, true)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeJSON(w, http.StatusOK, withLag(sub))
	}
}

// handleDeleteSubscription removes a subscription: 204.
func handleDeleteSubscription(store uts.Subscriptions, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := subscriptionName(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if err := store.DeleteSubscription(r.Context(), name); err != nil {
			writeError(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
