package uts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/uts-events/uts"
)

// FuzzDecodeBatch checks the decoder's contract on any input: it never panics; it either
// rejects the body with a Malformed or Invalid error that names a field within the batch, or
// returns events that all satisfy the schema, in canonical form, that decode again to the
// same events, and that AppendJSON encodes each as json.Marshal does.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Add([]byte(`[` + validEvent + `,` + validEvent + `]`))
	f.Add([]byte(`{"events":[` + validEvent + `]}`))
	f.Add([]byte(`{"topic":"t","event_id":"\u00e9","timestamp":"2026-11-25T10:00:00.5+05:30","source":"s","payload":{"b":[1,{"z":null,"a":1e3}],"a":"\u0000"}}`))
	f.Add([]byte(`[{"topic":"","event_id":7,"timestamp":"x","source":null,"payload":[]}]`))
	f.Add([]byte(`{"topic":"t","event_id":"e","timestamp":"2026-11-25T10:00:00+24:00","source":"s","payload":{"a":["\ud800","\ud83d\ude00"]}}`))
	lim := uts.Limits{MaxEventBytes: 4096, MaxBatchEvents: 50}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := uts.DecodeBatch(body, lim)
		if err != nil {
			var e *uts.Error
			if !errors.As(err, &e) {
				t.Fatalf("error without a kind: %v", err)
			}
			if e.Kind != uts.KindMalformed && e.Kind != uts.KindInvalid {
				t.Fatalf("unexpected kind %d: %v", e.Kind, err)
			}
			if e.Kind == uts.KindInvalid && len(e.Details) == 0 {
				t.Fatalf("invalid without details: %v", err)
			}
			for _, d := range e.Details {
				if d.Field == "" || d.Message == "" || d.Index < 0 {
					t.Fatalf("detail names nothing: %+v", d)
				}
			}
			return
		}
		if len(events) == 0 || len(events) > lim.MaxBatchEvents {
			t.Fatalf("accepted %d events", len(events))
		}
		// Text that was not valid Unicode is refused, never replaced: U+FFFD comes out only
		// where it went in.
		if !bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			for i, ev := range events {
				if strings.ContainsRune(ev.Topic+ev.EventID+ev.Source+string(ev.Payload), utf8.RuneError) {
					t.Fatalf("event %d: text silently replaced by U+FFFD: %+v", i, ev)
				}
			}
		}
		for i, ev := range events {
			for _, s := range []string{ev.Topic, ev.EventID, ev.Source} {
				if s == "" || len(s) > 255 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
					t.Fatalf("event %d: bad name %q accepted", i, s)
				}
			}
			if ev.Timestamp.Location() != time.UTC {
				t.Fatalf("event %d: timestamp not in UTC", i)
			}
			canon, err := uts.Canonical(ev.Payload)
			if err != nil || !bytes.Equal(canon, ev.Payload) || ev.Payload[0] != '{' {
				t.Fatalf("event %d: payload %s not a canonical object (%v)", i, ev.Payload, err)
			}
			// The Redis broker queues decoded events with AppendJSON: it must be json.Marshal.
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("event %d: AppendJSON\n got %s\nwant %s", i, got, want)
			}
		}
		again, err := json.Marshal(events)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip, err := uts.DecodeBatch(again, uts.Limits{})
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		for i := range events {
			a, b := events[i], roundTrip[i]
			if a.Key() != b.Key() || a.Source != b.Source || !a.Timestamp.Equal(b.Timestamp) ||
				!bytes.Equal(a.Payload, b.Payload) || a.ContentHash() != b.ContentHash() {
				t.Fatalf("event %d changed on a round trip: %+v vs %+v", i, a, b)
			}
		}
	})
}
