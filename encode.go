package uts

import (
	"encoding/json"
	"time"
)

// AppendJSON appends the event encoded exactly as json.Marshal would — the same fields in
// the same order, the timestamp in RFC 3339 with nanoseconds, the payload as it is — but
// without reflection, which was a quarter of the publisher's CPU and is on the Redis
// broker's publish path. The payload must be compact, as the decoder and the publisher's
// generator leave it.
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"topic":`...)
	b = AppendJSONString(b, e.Topic)
	b = append(b, `,"event_id":`...)
	b = AppendJSONString(b, e.EventID)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = AppendJSONString(b, e.Source)
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}')
}

// AppendJSONString appends s quoted as JSON. Plain printable ASCII, nearly every name, is
// copied; anything else goes through encoding/json so that escaping stays its.
func AppendJSONString(b []byte, s string) []byte {
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
