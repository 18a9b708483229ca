package uts

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encoding/json turns bytes that are not UTF-8, and a \u escape of half a surrogate pair,
// into U+FFFD without a word: two different payloads would then be stored as one, and hash
// as one. These check a body's strings first, so that such text is refused with the path of
// the string instead.

// stringProblem says why the valid JSON string literal does not hold valid Unicode text,
// or returns "".
func stringProblem(literal []byte) string {
	inner := literal[1 : len(literal)-1]
	if !utf8.Valid(inner) {
		return "must be valid UTF-8, and holds bytes that are not"
	}
	for i := 0; i < len(inner); i++ {
		if inner[i] != '\\' {
			continue
		}
		i++
		if inner[i] != 'u' {
			continue
		}
		r := hex4(inner[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+6 < len(inner) && inner[i+1] == '\\' && inner[i+2] == 'u' {
				if low := hex4(inner[i+3 : i+7]); low >= 0xDC00 && low < 0xE000 {
					i += 6
					continue
				}
			}
			return fmt.Sprintf(`must be valid UTF-8, and holds a lone surrogate \u%04x`, r)
		case r >= 0xDC00 && r < 0xE000:
			return fmt.Sprintf(`must be valid UTF-8, and holds a lone surrogate \u%04x`, r)
		}
	}
	return ""
}

// hex4 reads four hex digits, which a valid literal guarantees.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// textProblem finds the first string or object key inside the valid JSON value that is not
// valid Unicode text, and returns its path below path (payload.a.b, payload.items[2]).
func textProblem(value []byte, path string) (field, message string) {
	// Nearly every payload is UTF-8 without a \u escape: nothing to walk.
	if utf8.Valid(value) && !bytes.Contains(value, []byte(`\u`)) {
		return "", ""
	}
	return walkText(skipSpace(value), path)
}

func walkText(value []byte, path string) (field, message string) {
	switch value[0] {
	case '"':
		if msg := stringProblem(value[:stringEnd(value)]); msg != "" {
			return path, msg
		}
	case '[':
		for i, element := range arrayElements(value) {
			if field, msg := walkText(element, fmt.Sprintf("%s[%d]", path, i)); msg != "" {
				return field, msg
			}
		}
	case '{':
		data := skipSpace(value[1:])
		for len(data) > 0 && data[0] == '"' {
			end := stringEnd(data)
			if msg := stringProblem(data[:end]); msg != "" {
				return path, "has a key that " + msg
			}
			key := decodeString(data[:end])
			data = skipSpace(skipSpace(data[end:])[1:]) // past the colon
			n := valueEnd(data)
			if field, msg := walkText(data[:n], path+memberPath(key)); msg != "" {
				return field, msg
			}
			data = skipSpace(data[n:])
			if len(data) > 0 && data[0] == ',' {
				data = skipSpace(data[1:])
			}
		}
	}
	return "", ""
}

// memberPath is how a path names an object's member: .key, or ["key"] for a key that would
// not read back as one.
func memberPath(key string) string {
	if key != "" && !strings.ContainsAny(key, ".[]\"\\ ") && strings.IndexFunc(key, func(r rune) bool { return r < 0x20 }) < 0 {
		return "." + key
	}
	return "[" + string(AppendJSONString(nil, key)) + "]"
}
