package uts

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// These walk JSON that is already known to be valid (validJSON or json.Unmarshal checked it),
// so they need no error paths: the decoder and the canonicaliser share them to read a body
// once, without reflection and without copying.

// arrayElements splits a valid JSON array into its elements.
func arrayElements(array []byte) []json.RawMessage {
	var elements []json.RawMessage
	data := skipSpace(array[1:])
	for len(data) > 0 && data[0] != ']' {
		n := valueEnd(data)
		elements = append(elements, json.RawMessage(data[:n]))
		data = skipSpace(data[n:])
		if len(data) > 0 && data[0] == ',' {
			data = skipSpace(data[1:])
		}
	}
	return elements
}

// objectMember returns the value of a valid JSON object's member, the last one if the key
// repeats, or nil.
func objectMember(object []byte, name string) json.RawMessage {
	var found json.RawMessage
	eachMember(object, func(key []byte, value json.RawMessage) {
		if string(key) == name {
			found = value
		}
	})
	return found
}

// eachMember calls fn with each member of a valid JSON object, in order.
func eachMember(object []byte, fn func(key []byte, value json.RawMessage)) {
	data := skipSpace(object[1:])
	for len(data) > 0 && data[0] == '"' {
		end := stringEnd(data)
		key := data[1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key = []byte(decodeString(data[:end]))
		}
		data = skipSpace(skipSpace(data[end:])[1:]) // past the colon
		n := valueEnd(data)
		fn(key, json.RawMessage(data[:n]))
		data = skipSpace(data[n:])
		if len(data) > 0 && data[0] == ',' {
			data = skipSpace(data[1:])
		}
	}
}

// valueEnd returns the length of the valid JSON value at the start of data.
func valueEnd(data []byte) int {
	switch data[0] {
	case '"':
		return stringEnd(data)
	case '{', '[':
		depth := 0
		for i := 0; i < len(data); i++ {
			switch data[i] {
			case '"':
				i += stringEnd(data[i:]) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(data)
	}
	end := 0
	for end < len(data) && !isDelimiter(data[end]) {
		end++
	}
	return end
}

func decodeString(literal []byte) string {
	inner := literal[1 : len(literal)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(literal, &s) // valid JSON: cannot fail
	return s
}

// stringEnd returns the length of the string literal at the start of data.
func stringEnd(data []byte) int {
	for i := 1; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

func skipSpace(data []byte) []byte {
	for len(data) > 0 && (data[0] == ' ' || data[0] == '\t' || data[0] == '\n' || data[0] == '\r') {
		data = data[1:]
	}
	return data
}

func isDelimiter(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// ValidJSON reports whether data is one JSON value, exactly as json.Valid does, in a fraction
// of its time (see validJSON). The functions below need their input checked by it first.
func ValidJSON(data []byte) bool { return validJSON(data) }

// EachJSONMember calls fn with each member of the valid JSON value object, in order, and
// reports false when object is not an object. With JSONArrayElements it lets a client take a
// page of events apart without decoding each one: the subscriber writes each event's JSON as
// it came.
func EachJSONMember(object []byte, fn func(key []byte, value json.RawMessage)) bool {
	object = skipSpace(object)
	if len(object) == 0 || object[0] != '{' {
		return false
	}
	eachMember(object, fn)
	return true
}

// JSONArrayElements splits the valid JSON value array into its elements, or returns nil when
// it is not an array.
func JSONArrayElements(array []byte) []json.RawMessage {
	array = skipSpace(array)
	if len(array) == 0 || array[0] != '[' {
		return nil
	}
	return arrayElements(array)
}
