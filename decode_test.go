package uts_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

const validEvent = `{"topic":"orders","event_id":"a1b2","timestamp":"2026-11-25T10:00:00Z","source":"checkout","payload":{"total":12.5}}`

func withField(field, value string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(validEvent), &m); err != nil {
		panic(err)
	}
	if value == "<absent>" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestDecodeBatchShapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{"one event", validEvent, 1},
		{"array", "[" + validEvent + "," + withField("event_id", `"x"`) + "]", 2},
		{"envelope", `{"events":[` + validEvent + `]}`, 1},
		{"leading white space", " \n\t" + validEvent + "\n", 1},
		{"unknown fields ignored", withField("extra", `{"a":1}`), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, err := uts.DecodeBatch([]byte(tc.body), uts.DefaultLimits())
			if err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			if len(events) != tc.want {
				t.Fatalf("got %d events, want %d", len(events), tc.want)
			}
			if events[0].Topic != "orders" || events[0].Source != "checkout" {
				t.Fatalf("fields lost: %+v", events[0])
			}
		})
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	long := `"` + strings.Repeat("x", 256) + `"`
	for _, tc := range []struct {
		name  string
		body  string
		kind  uts.Kind
		field string
	}{
		{"empty body", "", uts.KindMalformed, ""},
		{"not json", "{nope", uts.KindMalformed, ""},
		{"truncated array", "[" + validEvent, uts.KindMalformed, ""},
		{"a number", "42", uts.KindInvalid, "event"},
		{"empty array", "[]", uts.KindInvalid, "events"},
		{"empty envelope", `{"events":[]}`, uts.KindInvalid, "events"},
		{"envelope not an array", `{"events":{}}`, uts.KindInvalid, "events"},
		{"array of non-objects", `[1]`, uts.KindInvalid, "event"},
		{"topic absent", withField("topic", "<absent>"), uts.KindInvalid, "topic"},
		{"topic null", withField("topic", "null"), uts.KindInvalid, "topic"},
		{"topic empty", withField("topic", `""`), uts.KindInvalid, "topic"},
		{"topic number", withField("topic", `7`), uts.KindInvalid, "topic"},
		{"topic too long", withField("topic", long), uts.KindInvalid, "topic"},
		{"topic control character", withField("topic", `"a\nb"`), uts.KindInvalid, "topic"},
		{"topic DEL character", withField("topic", `"a\u007fb"`), uts.KindInvalid, "topic"},
		{"event_id absent", withField("event_id", "<absent>"), uts.KindInvalid, "event_id"},
		{"event_id empty", withField("event_id", `""`), uts.KindInvalid, "event_id"},
		{"event_id too long", withField("event_id", long), uts.KindInvalid, "event_id"},
		{"event_id tab", withField("event_id", `"a\tb"`), uts.KindInvalid, "event_id"},
		{"source absent", withField("source", "<absent>"), uts.KindInvalid, "source"},
		{"source object", withField("source", `{}`), uts.KindInvalid, "source"},
		{"source too long", withField("source", long), uts.KindInvalid, "source"},
		{"timestamp absent", withField("timestamp", "<absent>"), uts.KindInvalid, "timestamp"},
		{"timestamp not a date", withField("timestamp", `"yesterday"`), uts.KindInvalid, "timestamp"},
		{"timestamp date only", withField("timestamp", `"2026-11-25"`), uts.KindInvalid, "timestamp"},
		{"timestamp bad month", withField("timestamp", `"2026-13-25T10:00:00Z"`), uts.KindInvalid, "timestamp"},
		{"timestamp too early", withField("timestamp", `"1677-12-31T23:59:59Z"`), uts.KindInvalid, "timestamp"},
		{"timestamp too late", withField("timestamp", `"2262-01-01T00:00:01Z"`), uts.KindInvalid, "timestamp"},
		{"timestamp number", withField("timestamp", `1764064800`), uts.KindInvalid, "timestamp"},
		{"payload array", withField("payload", `[1,2]`), uts.KindInvalid, "payload"},
		{"payload string", withField("payload", `"x"`), uts.KindInvalid, "payload"},
		{"payload invalid UTF-8", withField("payload", "{\"note\":\"a\xffb\"}"), uts.KindInvalid, "payload.note"},
		{"payload lone surrogate", withField("payload", `{"note":"a\ud800b"}`), uts.KindInvalid, "payload.note"},
		{"payload lone low surrogate", withField("payload", `{"note":"\udc00"}`), uts.KindInvalid, "payload.note"},
		{"payload surrogate then no pair", withField("payload", `{"note":"\ud800\u0041"}`), uts.KindInvalid, "payload.note"},
		{"payload nested", withField("payload", `{"a":{"b":"\ud800"}}`), uts.KindInvalid, "payload.a.b"},
		{"payload array index", withField("payload", `{"items":["ok","ok","\udfff"]}`), uts.KindInvalid, "payload.items[2]"},
		{"payload odd key", withField("payload", `{"x.y":["\ud800"]}`), uts.KindInvalid, `payload["x.y"][0]`},
		{"payload bad key", withField("payload", "{\"a\":{\"\xff\":1}}"), uts.KindInvalid, "payload.a"},
		{"topic lone surrogate", withField("topic", `"a\ud800"`), uts.KindInvalid, "topic"},
		{"source invalid UTF-8", withField("source", "\"a\xc3\""), uts.KindInvalid, "source"},
		{"timestamp offset +24:00", withField("timestamp", `"2026-11-25T10:00:00+24:00"`), uts.KindInvalid, "timestamp"},
		{"timestamp offset -24:00", withField("timestamp", `"2026-11-25T10:00:00-24:00"`), uts.KindInvalid, "timestamp"},
		{"timestamp offset +01:60", withField("timestamp", `"2026-11-25T10:00:00+01:60"`), uts.KindInvalid, "timestamp"},
		{"timestamp offset +2400", withField("timestamp", `"2026-11-25T10:00:00+2400"`), uts.KindInvalid, "timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, err := uts.DecodeBatch([]byte(tc.body), uts.DefaultLimits())
			if err == nil {
				t.Fatalf("accepted %d events, want an error", len(events))
			}
			var e *uts.Error
			if !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("error %v (kind %d), want kind %d", err, uts.KindOf(err), tc.kind)
			}
			if tc.field == "" {
				return
			}
			if len(e.Details) == 0 || e.Details[0].Field != tc.field || e.Details[0].Message == "" {
				t.Fatalf("details %+v, want the field %q named", e.Details, tc.field)
			}
		})
	}
}

func TestDecodeBatchNamesEveryBadEvent(t *testing.T) {
	body := "[" + validEvent + "," + withField("topic", `""`) + "," + validEvent + "," +
		withField("source", "<absent>") + "]"
	_, err := uts.DecodeBatch([]byte(body), uts.DefaultLimits())
	var e *uts.Error
	if !errors.As(err, &e) || e.Kind != uts.KindInvalid {
		t.Fatalf("got %v, want KindInvalid", err)
	}
	got := map[int]string{}
	for _, d := range e.Details {
		got[d.Index] = d.Field
	}
	if len(got) != 2 || got[1] != "topic" || got[3] != "source" {
		t.Fatalf("details %+v, want index 1 topic and index 3 source", e.Details)
	}
}

func TestDecodeBatchLimits(t *testing.T) {
	lim := uts.Limits{MaxEventBytes: len(validEvent), MaxBatchEvents: 2}
	if _, err := uts.DecodeBatch([]byte("["+validEvent+","+validEvent+"]"), lim); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	_, err := uts.DecodeBatch([]byte("["+validEvent+","+validEvent+","+validEvent+"]"), lim)
	if uts.KindOf(err) != uts.KindInvalid {
		t.Fatalf("three events over a limit of two: %v", err)
	}
	big := withField("payload", `{"pad":"`+strings.Repeat("x", 10)+`"}`)
	_, err = uts.DecodeBatch([]byte("["+validEvent+","+big+"]"), lim)
	var e *uts.Error
	if !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Index != 1 || e.Details[0].Field != "event" {
		t.Fatalf("oversized event: %v %+v", err, e)
	}
}

func TestDecodeTimestamps(t *testing.T) {
	want := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{
		"2026-11-25T10:00:00Z",
		"2026-11-25T10:00:00.000Z",
		"2026-11-25T11:00:00+01:00",
		"2026-11-25T05:00:00-05:00",
		"2026-11-25T11:00:00+0100",
		"2026-11-25T10:00:00",
		"2026-11-25t10:00:00z",
		"2026-11-25 10:00:00Z",
	} {
		events, err := uts.DecodeBatch([]byte(withField("timestamp", `"`+in+`"`)), uts.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := events[0].Timestamp; !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: got %v, want %v in UTC", in, got, want)
		}
	}
	events, err := uts.DecodeBatch([]byte(withField("timestamp", `"2026-11-25T10:00:00.123456789+02:00"`)), uts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := events[0].Timestamp.Format(time.RFC3339Nano); got != "2026-11-25T08:00:00.123456789Z" {
		t.Errorf("fraction or zone lost: %s", got)
	}
}

func TestDecodePayloadCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<absent>", `{}`},
		{"null", `{}`},
		{`{ "b": 1, "a": {"d": [1, 2.50, "x"], "c": null} }`, `{"a":{"c":null,"d":[1,2.50,"x"]},"b":1}`},
		{`{"big": 12345678901234567890123}`, `{"big":12345678901234567890123}`},
		{`{"html": "<a&b>", "nul": "\u0000"}`, `{"html":"<a&b>","nul":"\u0000"}`},
	} {
		events, err := uts.DecodeBatch([]byte(withField("payload", tc.in)), uts.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := string(events[0].Payload); got != tc.want {
			t.Errorf("payload %s: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestContentHashIgnoresFormatting(t *testing.T) {
	a := `{"topic":"t","event_id":"1","timestamp":"2026-11-25T11:00:00+01:00","source":"s","payload":{"x":1,"y":[true]}}`
	b := `{"payload":{ "y":[ true ], "x":1 },"source":"s","timestamp":"2026-11-25T10:00:00.000Z","event_id":"1","topic":"t"}`
	c := `{"topic":"t","event_id":"1","timestamp":"2026-11-25T10:00:00Z","source":"s","payload":{"x":2,"y":[true]}}`
	events, err := uts.DecodeBatch([]byte("["+a+","+b+","+c+"]"), uts.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if events[0].ContentHash() != events[1].ContentHash() {
		t.Errorf("equal events hash differently")
	}
	if events[0].ContentHash() == events[2].ContentHash() {
		t.Errorf("different payloads hash equally")
	}
}

// U+FFFD is a character like any other: a producer may send it, written or escaped, and it
// is kept. Only what would turn into it (bytes that are not UTF-8, half a surrogate pair) is
// refused. A whole surrogate pair is one character.
func TestDecodeKeepsValidText(t *testing.T) {
	body := withField("event_id", `"id-\ufffd"`)
	body = strings.Replace(body, `"source":"checkout"`, `"source":"src-�"`, 1)
	body = strings.Replace(body, `"payload":`, `"payload":{"face":"\ud83d\ude00","r":"�"},"x":`, 1)
	events, err := uts.DecodeBatch([]byte(body), uts.DefaultLimits())
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	e := events[0]
	if e.EventID != "id-\uFFFD" || e.Source != "src-\uFFFD" || string(e.Payload) != "{\"face\":\"😀\",\"r\":\"\uFFFD\"}" {
		t.Errorf("got event_id %q source %q payload %s", e.EventID, e.Source, e.Payload)
	}
}

func TestInvalidMessage(t *testing.T) {
	lim := uts.Limits{MaxEventBytes: len(validEvent)}
	big := withField("payload", `{"pad":"`+strings.Repeat("x", 10)+`"}`)
	for _, c := range []struct {
		body, want string
	}{
		{big, "invalid event at index 0: event must be at most"},
		{withField("topic", `""`), "invalid event at index 0: topic must not be empty"},
		{"[" + withField("topic", `""`) + "," + withField("source", `""`) + "]", "(and 1 more problem)"},
		{"[" + withField("topic", `""`) + "," + withField("source", `""`) + "," + withField("source", `""`) + "]", "(and 2 more problems)"},
	} {
		_, err := uts.DecodeBatch([]byte(c.body), lim)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to say %q", err, c.want)
		}
	}
}
