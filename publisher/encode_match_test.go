package publisher

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// TestAppendEventMatchesJSONMarshal holds the hand-written encoder to encoding/json, byte for
// byte, on generated events of every topic shape and on strings that need escaping.
func TestAppendEventMatchesJSONMarshal(t *testing.T) {
	g, err := NewGenerator(42, 2000, 0.3, 8)
	if err != nil {
		t.Fatal(err)
	}
	events := []uts.Event{{Topic: "q\"uo<te>&", EventID: "tab\there", Source: "é ünïcode \u2028",
		Timestamp: time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC), Payload: json.RawMessage(`{"a":1}`)}}
	for {
		ge, ok := g.Next()
		if !ok {
			break
		}
		events = append(events, ge.Event)
	}
	for _, e := range events {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
		if canon, err := uts.Canonical(e.Payload); err != nil || !bytes.Equal(canon, e.Payload) {
			t.Fatalf("payload %s is not canonical JSON (%v)", e.Payload, err)
		}
	}
}
