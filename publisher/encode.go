package publisher

import (
	"encoding/json"
	"time"

	"github.com/uts-events/uts"
)

// appendEvent encodes a generated event exactly as json.Marshal would — the same fields in
// the same order, the timestamp in RFC 3339 with nanoseconds, the payload as it is (the
// generator makes it compact) — but without reflection, which was a quarter of the
// publisher's CPU.
func appendEvent(b []byte, e uts.Event) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, e.Topic)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, e.EventID)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = appendJSONString(b, e.Source)
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}')
}

// appendJSONString quotes s as JSON. Plain printable ASCII, all the generator makes, is
// copied; anything else goes through encoding/json so that escaping stays its.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(b, quoted...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
