package uts

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
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

// AppendJSON appends the stored event as the API writes it: exactly what a json.Encoder with
// SetEscapeHTML(false) (the API's writeJSON) makes of it, without the newline — the Event's
// fields, then processed_at; the Cursor is not part of it. It differs from json.Marshal only
// in leaving <, > and & as they are, in strings and payload alike. Reflection here was about
// a fifth of the CPU of serving a subscription's page. A payload that is not compact (the
// stores keep it canonical, so none should be) is compacted as the encoder would.
func (e StoredEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONText(b, e.Topic)
	b = append(b, `,"event_id":`...)
	b = appendJSONText(b, e.EventID)
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","source":`...)
	b = appendJSONText(b, e.Source)
	b = append(b, `,"payload":`...)
	b = appendCompactJSON(b, e.Payload)
	b = append(b, `,"processed_at":"`...)
	b = e.ProcessedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// appendJSONText appends s quoted as encoding/json quotes it without HTML escaping: control
// characters, the quote and the backslash escaped, bytes that are not UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped; everything else as it is.
func appendJSONText(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCompactJSON appends the valid JSON value raw without white space outside strings,
// as encoding/json writes a json.RawMessage when it does not escape HTML. Nearly every
// payload has none, and is copied.
func appendCompactJSON(b []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(b, "null"...) // as encoding/json writes a nil RawMessage
	}
	if bytes.IndexAny(raw, " \t\r\n") < 0 {
		return append(b, raw...)
	}
	inString := false
	start := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			b = append(b, raw[start:i]...)
			start = i + 1
		}
	}
	return append(b, raw[start:]...)
}
