package uts_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// apiJSON is what the API's writeJSON makes of v: a json.Encoder without HTML escaping,
// without its newline.
func apiJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// trickyStrings need every kind of escaping encoding/json does, and some it does not.
var trickyStrings = []string{
	"", "orders", "q\"uo<te>&", "back\\slash", "tab\there", "nl\ncr\r", "\b\f\x00\x01\x1f\x7f",
	"é ünïcode 日本語 🎉", "line\u2028sep\u2029para", "bad utf8 \xff\xfe end", "half \xe2\x80",
	"<script>alert('x')</script>", "a&b", strings.Repeat("x", 300),
}

var trickyPayloads = []string{
	`{}`, `[]`, `null`, `0`, `"s"`, `{"a":1}`,
	`{"amount_cents":129900,"currency":"EUR","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}]}`,
	`{"html":"<b>&amp;</b>","esc":"\u003c\"\\\/\n","uni":"é🎉","sep":"\u2028 \u2029"}`,
	`{"deep":{"a":[1,2,{"b":[true,false,null,-1.5e-7]}]}}`,
	`{"spaced": "a b",  "arr" : [ 1 , 2 ]}`, "{\n\t\"a\" :\r\n 1\n}", `{"s":"in \" string  with \\ spaces"}`,
}

var trickyTimes = []time.Time{
	{},
	time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC),
	time.Date(2026, 11, 25, 10, 0, 0, 120000000, time.UTC),
	time.Date(1999, 1, 2, 3, 4, 5, 6, time.FixedZone("", 5*3600+30*60)),
	time.Date(2030, 6, 7, 8, 9, 10, 999999999, time.FixedZone("", -7*3600)),
	time.Date(2026, 3, 1, 0, 0, 0, 1, time.Local),
}

// TestStoredEventAppendJSONMatchesAPIEncoding holds the hand-written encoder to the API's
// encoding/json output, byte for byte, over every combination of the tricky strings,
// payloads and times, and over random events; where no HTML character is involved it is
// json.Marshal's output too.
func TestStoredEventAppendJSONMatchesAPIEncoding(t *testing.T) {
	var events []uts.StoredEvent
	for i, s := range trickyStrings {
		for j, p := range trickyPayloads {
			tm := trickyTimes[(i+j)%len(trickyTimes)]
			events = append(events, uts.StoredEvent{
				Event: uts.Event{Topic: s, EventID: trickyStrings[(i+j)%len(trickyStrings)], Timestamp: tm.UTC(),
					Source: trickyStrings[(i+2*j)%len(trickyStrings)], Payload: json.RawMessage(p), Delivery: "not on the wire"},
				ProcessedAt: trickyTimes[(i*j)%len(trickyTimes)],
				Cursor:      uts.Cursor{Tx: uint64(i), Seq: int64(j)},
			})
		}
	}
	events = append(events, uts.StoredEvent{Event: uts.Event{Topic: "nil payload"}})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		events = append(events, randomEvent(rng))
	}
	for _, e := range events {
		want := apiJSON(t, e)
		got := e.AppendJSON([]byte("prefix"))
		if !bytes.Equal(got[len("prefix"):], want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got[len("prefix"):], want)
		}
		marshalled, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.ContainsAny(want, "<>&") && !bytes.Equal(got[len("prefix"):], marshalled) {
			t.Fatalf("AppendJSON differs from json.Marshal without HTML characters\n got %s\nwant %s", got, marshalled)
		}
	}
}

// randomEvent builds an event from random runes, bytes and nested payloads.
func randomEvent(rng *rand.Rand) uts.StoredEvent {
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			switch rng.IntN(4) {
			case 0:
				b.WriteByte(byte(rng.IntN(256)))
			case 1:
				b.WriteRune(rune(rng.IntN(0x30000)))
			default:
				b.WriteByte(byte(0x20 + rng.IntN(0x5f)))
			}
		}
		return b.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := rng.IntN(6); {
		case k == 0 && depth < 4:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[str()] = value(depth + 1)
			}
			return m
		case k == 1 && depth < 4:
			a := make([]any, rng.IntN(4))
			for i := range a {
				a[i] = value(depth + 1)
			}
			return a
		case k == 2:
			return rng.NormFloat64() * 1e6
		case k == 3:
			return rng.IntN(2) == 0
		default:
			return str()
		}
	}
	payload, _ := json.Marshal(value(0))
	if canon, err := uts.Canonical(payload); err == nil {
		payload = canon // as stores keep it; the HTML characters stay unescaped
	}
	at := func() time.Time {
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", (rng.IntN(48)-24)*30*60))
	}
	return uts.StoredEvent{
		Event:       uts.Event{Topic: str(), EventID: str(), Timestamp: at().UTC(), Source: str(), Payload: payload},
		ProcessedAt: at(),
		Cursor:      uts.Cursor{Seq: rng.Int64()},
	}
}

// FuzzStoredEventAppendJSON holds the encoder to the API's encoding/json output on any
// strings, any valid JSON payload and any time that encoding/json can write.
func FuzzStoredEventAppendJSON(f *testing.F) {
	for i, s := range trickyStrings {
		f.Add(s, "id", s, []byte(trickyPayloads[i%len(trickyPayloads)]), int64(i)*1e17+123, 19800)
	}
	f.Fuzz(func(t *testing.T, topic, id, source string, payload []byte, nanos int64, offset int) {
		if !json.Valid(payload) {
			t.Skip()
		}
		at := time.Unix(0, nanos).In(time.FixedZone("", offset%(24*3600)))
		e := uts.StoredEvent{Event: uts.Event{Topic: topic, EventID: id, Timestamp: at.UTC(), Source: source, Payload: payload},
			ProcessedAt: at}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if enc.Encode(e) != nil {
			t.Skip() // a time encoding/json refuses (a zone offset in seconds) is never stored
		}
		if got, want := e.AppendJSON(nil), bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}
