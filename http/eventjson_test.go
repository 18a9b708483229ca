package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// htmlEvents have <, > and & in names and payloads, which writeJSON leaves as they are and
// json.Marshal would escape, and the other characters encoding/json escapes.
func htmlEvents(n int) []uts.Event {
	names := []string{"a<b>&c", "orders", "é\u2028\"q\"\\", "tab\tnl\n"}
	payloads := []string{`{"html":"<b>&amp;</b>","n":1}`, `{"deep":{"a":[1,{"b":"\u003c"}]},"s":"x y"}`, `{}`, `{"u":"é🎉\u2028"}`}
	var events []uts.Event
	for i := range n {
		events = append(events, uts.Event{
			Topic: names[i%len(names)], EventID: names[(i+1)%len(names)] + strconv.Itoa(i),
			Timestamp: time.Date(2026, 11, 30, 12, 0, 0, 123456789*(i%2), time.UTC).Add(time.Duration(i) * time.Second),
			Source:    names[(i+2)%len(names)], Payload: json.RawMessage(payloads[i%len(payloads)]),
		})
	}
	return events
}

// writeJSONBodyOf is what the handlers wrote before the append functions: writeJSON's body.
func writeJSONBodyOf(v any) []byte {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, v)
	return rec.Body.Bytes()
}

// TestEventAnswersMatchWriteJSON holds each append function to what writeJSON (or the
// export's encoder) writes for the same events, byte for byte, on empty and full pages.
func TestEventAnswersMatchWriteJSON(t *testing.T) {
	for _, n := range []int{0, 1, 9} {
		var stored []uts.StoredEvent
		for i, e := range htmlEvents(n) {
			stored = append(stored, uts.StoredEvent{Event: e, ProcessedAt: time.Date(2026, 11, 30, 12, 0, 1, i, time.UTC),
				Cursor: uts.Cursor{Tx: uint64(i % 2 * 77), Seq: int64(i + 1)}})
		}
		start := uts.Cursor{Tx: 5, Seq: 3}
		old := subscriptionEvents{Events: make([]subscriptionEvent, len(stored)), Cursor: start}
		for i, e := range stored {
			old.Events[i] = subscriptionEvent{StoredEvent: e, Cursor: e.Cursor}
			old.Cursor = e.Cursor
		}
		if got, want := appendSubscriptionPage(nil, stored, start), writeJSONBodyOf(old); !bytes.Equal(got, want) {
			t.Errorf("subscription page of %d\n got %s\nwant %s", n, got, want)
		}
		page := stored
		if page == nil {
			page = []uts.StoredEvent{}
		}
		if got, want := appendEventsPage(nil, stored), writeJSONBodyOf(page); !bytes.Equal(got, want) {
			t.Errorf("events page of %d\n got %s\nwant %s", n, got, want)
		}
		var lines bytes.Buffer
		enc := newJSONEncoder(&lines)
		for i := range stored {
			if err := enc.Encode(&stored[i]); err != nil {
				t.Fatal(err)
			}
		}
		if got := appendEventLines(nil, stored); !bytes.Equal(got, lines.Bytes()) {
			t.Errorf("export lines of %d\n got %s\nwant %s", n, got, lines.Bytes())
		}
	}
}

// TestEventAnswersAsBefore reads events with <, > and & through the real handler and
// compares each answer to what writeJSON made of the same store read before: a
// subscription's page, an /events page and the NDJSON export.
func TestEventAnswersAsBefore(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	if _, err := e.store.Append(ctx, htmlEvents(12)); err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.Events(ctx, uts.EventQuery{Limit: 100})
	if err != nil || len(stored) != 12 {
		t.Fatalf("store read %d events, %v; want 12", len(stored), err)
	}

	e.putSubscription("html", `{}`, http.StatusCreated)
	resp := e.do("GET", "/subscriptions/html/events?limit=5", nil)
	mustStatus(t, resp, http.StatusOK)
	old := subscriptionEvents{Events: make([]subscriptionEvent, 5)}
	for i, ev := range stored[:5] {
		old.Events[i] = subscriptionEvent{StoredEvent: ev, Cursor: ev.Cursor}
		old.Cursor = ev.Cursor
	}
	if want := writeJSONBodyOf(old); !bytes.Equal(resp.body, want) {
		t.Errorf("subscription page\n got %s\nwant %s", resp.body, want)
	}
	if got := resp.header.Get("Content-Length"); got != strconv.Itoa(len(resp.body)) {
		t.Errorf("Content-Length %q; want %d", got, len(resp.body))
	}

	resp = e.do("GET", "/events?limit=100", nil)
	mustStatus(t, resp, http.StatusOK)
	if want := writeJSONBodyOf(stored); !bytes.Equal(resp.body, want) {
		t.Errorf("/events page\n got %s\nwant %s", resp.body, want)
	}

	resp = e.do("GET", "/events", nil, "Accept", ndjson)
	mustStatus(t, resp, http.StatusOK)
	var lines bytes.Buffer
	enc := newJSONEncoder(&lines)
	for i := range stored {
		_ = enc.Encode(&stored[i])
	}
	if !bytes.Equal(resp.body, lines.Bytes()) {
		t.Errorf("export\n got %s\nwant %s", resp.body, lines.Bytes())
	}
}
