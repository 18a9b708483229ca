package uts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes bounds topic, event_id and source: they are keys and labels, not content.
const maxNameBytes = 255

// DecodeBatch parses a /publish body — one event, a JSON array of events, or
// {"events": [...]} — and validates every event. It returns an *Error of KindMalformed when
// the body is not JSON of one of those shapes, and of KindInvalid, naming every bad field
// of every bad event, when any event breaks the schema: a batch is taken whole or not at all.
func DecodeBatch(body []byte, lim Limits) ([]Event, error) {
	raws, err := splitBatch(body)
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, &Error{Kind: KindInvalid, Message: "the batch is empty",
			Details: []FieldError{{Index: 0, Field: "events", Message: "must hold at least one event"}}}
	}
	if lim.MaxBatchEvents > 0 && len(raws) > lim.MaxBatchEvents {
		return nil, &Error{Kind: KindInvalid, Message: "too many events in one batch",
			Details: []FieldError{{Index: lim.MaxBatchEvents, Field: "events",
				Message: fmt.Sprintf("a batch holds at most %d events, this one has %d", lim.MaxBatchEvents, len(raws))}}}
	}
	events := make([]Event, len(raws))
	var details []FieldError
	for i, raw := range raws {
		if lim.MaxEventBytes > 0 && len(raw) > lim.MaxEventBytes {
			details = append(details, FieldError{Index: i, Field: "event",
				Message: fmt.Sprintf("must be at most %d bytes, this one has %d", lim.MaxEventBytes, len(raw))})
			continue
		}
		details = append(details, decodeEvent(raw, i, &events[i])...)
	}
	if len(details) > 0 {
		return nil, &Error{Kind: KindInvalid, Message: invalidMessage(details), Details: details}
	}
	return events, nil
}

func invalidMessage(details []FieldError) string {
	d := details[0]
	msg := fmt.Sprintf("invalid event at index %d: %s %s", d.Index, d.Field, d.Message)
	switch more := len(details) - 1; {
	case more == 1:
		msg += " (and 1 more problem)"
	case more > 1:
		msg += fmt.Sprintf(" (and %d more problems)", more)
	}
	return msg
}

// splitBatch finds the events of a body without decoding them, so that each event's errors
// can name its index. The events are sub-slices of body: nothing is copied.
func splitBatch(body []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, Errorf(KindMalformed, "the body is empty; send an event, an array of events or {\"events\": [...]}")
	}
	if !validJSON(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v) // for the position of the error
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, malformed(err)
	}
	switch trimmed[0] {
	case '[':
		return arrayElements(trimmed), nil
	case '{':
		events := objectMember(trimmed, "events")
		if events == nil || isNull(events) {
			return []json.RawMessage{trimmed}, nil
		}
		if events[0] != '[' {
			return nil, &Error{Kind: KindInvalid, Message: "events must be an array of events",
				Details: []FieldError{{Index: 0, Field: "events", Message: "must be an array"}}}
		}
		return arrayElements(events), nil
	}
	return nil, &Error{Kind: KindInvalid, Message: "the body must be an event object, an array of events or {\"events\": [...]}",
		Details: []FieldError{{Index: 0, Field: "event", Message: "must be a JSON object"}}}
}

func malformed(err error) *Error {
	return &Error{Kind: KindMalformed, Message: "malformed JSON: " + err.Error(), Err: err}
}

// wireEvent holds each field undecoded, so that a wrong type is reported per field rather
// than as one opaque decoding error.
type wireEvent struct {
	Topic     json.RawMessage `json:"topic"`
	EventID   json.RawMessage `json:"event_id"`
	Timestamp json.RawMessage `json:"timestamp"`
	Source    json.RawMessage `json:"source"`
	Payload   json.RawMessage `json:"payload"`
}

func decodeEvent(raw json.RawMessage, index int, out *Event) []FieldError {
	if len(raw) == 0 || raw[0] != '{' {
		return []FieldError{{Index: index, Field: "event", Message: "must be a JSON object"}}
	}
	w := scanEvent(raw)
	var details []FieldError
	fail := func(field, message string) {
		details = append(details, FieldError{Index: index, Field: field, Message: message})
	}
	var msg string
	if out.Topic, msg = name(w.Topic); msg != "" {
		fail("topic", msg)
	}
	if out.EventID, msg = name(w.EventID); msg != "" {
		fail("event_id", msg)
	}
	if out.Source, msg = name(w.Source); msg != "" {
		fail("source", msg)
	}
	if out.Timestamp, msg = timestamp(w.Timestamp); msg != "" {
		fail("timestamp", msg)
	}
	var field string
	if out.Payload, field, msg = payload(w.Payload); msg != "" {
		fail(field, msg)
	}
	return details
}

// scanEvent picks the known fields out of an event object, as json.Unmarshal into a
// wireEvent would (the last of repeated keys wins) but without reflection or a second
// validation pass: raw was validated when the batch was split.
func scanEvent(raw json.RawMessage) wireEvent {
	var w wireEvent
	eachMember(raw, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "topic":
			w.Topic = value
		case "event_id":
			w.EventID = value
		case "timestamp":
			w.Timestamp = value
		case "source":
			w.Source = value
		case "payload":
			w.Payload = value
		}
	})
	return w
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// str decodes a JSON string, or says why raw is not one.
func str(raw json.RawMessage) (string, string) {
	if raw == nil || isNull(raw) {
		return "", "is required"
	}
	if raw[0] != '"' {
		return "", "must be a string"
	}
	if msg := stringProblem(raw); msg != "" {
		return "", msg
	}
	// Most names need no unescaping; skip the decoder for them.
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "must be a string"
	}
	return s, ""
}

func name(raw json.RawMessage) (string, string) {
	s, msg := str(raw)
	if msg != "" {
		return "", msg
	}
	if msg := nameProblem(s); msg != "" {
		return "", msg
	}
	return s, ""
}

// nameProblem says what is wrong with a topic, event_id or source; "" when nothing is.
func nameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxNameBytes:
		return fmt.Sprintf("must be at most %d bytes, got %d", maxNameBytes, len(s))
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

// timestampLayouts are the ISO 8601 / RFC 3339 forms accepted. Go's parser takes a
// fractional second after the seconds field whether or not the layout names one.
var timestampLayouts = []struct {
	layout string
	zoned  bool
}{
	{time.RFC3339Nano, true},
	{"2006-01-02T15:04:05Z0700", true}, // offset without a colon: +0100
	{"2006-01-02T15:04:05", false},     // no zone: taken as UTC
}

// MinTimestamp and MaxTimestamp bound an event's timestamp to what an int64 of nanoseconds
// since 1970 holds, so that every store keeps it exactly.
var (
	MinTimestamp = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTimestamp = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func timestamp(raw json.RawMessage) (time.Time, string) {
	s, msg := str(raw)
	if msg != "" {
		return time.Time{}, msg
	}
	if len(s) >= 11 && (s[10] == 't' || s[10] == ' ') {
		s = s[:10] + "T" + s[11:] // RFC 3339 allows a lowercase t and, by note, a space
	}
	if strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "Z"
	}
	for _, l := range timestampLayouts {
		var t time.Time
		var err error
		if l.zoned {
			t, err = time.Parse(l.layout, s)
		} else {
			t, err = time.ParseInLocation(l.layout, s, time.UTC)
		}
		if err == nil {
			if msg := offsetProblem(s, l.layout); msg != "" {
				return time.Time{}, msg
			}
			if t.Before(MinTimestamp) || t.After(MaxTimestamp) {
				return time.Time{}, fmt.Sprintf("must be between %s and %s", MinTimestamp.Format(time.DateOnly), MaxTimestamp.Format(time.DateOnly))
			}
			return t.UTC(), ""
		}
	}
	return time.Time{}, fmt.Sprintf("must be an ISO 8601 / RFC 3339 date-time such as 2026-11-25T10:00:00Z, got %q", s)
}

// offsetProblem refuses a UTC offset past 23:59, which time.Parse takes (+24:00 moves the
// time by a day) but RFC 3339 does not: its offsets are hours 00-23 and minutes 00-59.
func offsetProblem(s, layout string) string {
	var hh, mm string
	switch {
	case strings.HasSuffix(s, "Z"):
		return ""
	case layout == time.RFC3339Nano && len(s) >= 6:
		hh, mm = s[len(s)-5:len(s)-3], s[len(s)-2:]
	case layout != time.RFC3339Nano && len(s) >= 5:
		hh, mm = s[len(s)-4:len(s)-2], s[len(s)-2:]
	default:
		return ""
	}
	if hh > "23" || mm > "59" {
		return fmt.Sprintf("must have a UTC offset from -23:59 to +23:59, got %q", s)
	}
	return ""
}

// payload returns the payload in canonical form — object keys sorted, no insignificant white
// space, numbers as written — so that the stored bytes and the content hash do not depend on
// how a producer happened to format them.
// A string in it that is not valid Unicode text is refused with its path as the field.
func payload(raw json.RawMessage) (json.RawMessage, string, string) {
	if raw == nil || isNull(raw) {
		return json.RawMessage("{}"), "", ""
	}
	if raw[0] != '{' {
		return nil, "payload", "must be a JSON object"
	}
	if field, msg := textProblem(raw, "payload"); msg != "" {
		return nil, field, msg
	}
	// raw was validated when the batch was split.
	canonical, _ := appendCanonical(make([]byte, 0, len(raw)), raw)
	return canonical, "", ""
}
