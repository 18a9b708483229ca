package uts

// validJSON reports whether data is one JSON value with optional white space around it,
// exactly as json.Valid does: the same grammar, bytes of any value inside strings (json.Valid
// checks no UTF-8 there either), and the same nesting limit. json.Valid's scanner calls a
// function per byte; walking the grammar directly checks a request body in a fraction of the
// time, and checking bodies was a sixth of the aggregator's CPU in Redis mode, where each
// event is checked when published and again when consumed. FuzzValidJSON holds the two equal.
func validJSON(data []byte) bool {
	i, ok := validValue(data, skipSpaceAt(data, 0), 0)
	return ok && skipSpaceAt(data, i) == len(data)
}

// maxNesting is encoding/json's limit on nested arrays and objects.
const maxNesting = 10000

func skipSpaceAt(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}

// validValue checks the value starting at data[i] and returns the index after it.
func validValue(data []byte, i, depth int) (int, bool) {
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '{':
		return validObject(data, i+1, depth+1)
	case c == '[':
		return validArray(data, i+1, depth+1)
	case c == '"':
		return validString(data, i+1)
	case c == '-' || ('0' <= c && c <= '9'):
		return validNumber(data, i)
	case c == 't':
		return validLiteral(data, i, "true")
	case c == 'f':
		return validLiteral(data, i, "false")
	case c == 'n':
		return validLiteral(data, i, "null")
	}
	return i, false
}

func validObject(data []byte, i, depth int) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpaceAt(data, i)
	if i < len(data) && data[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return i, false
		}
		var ok bool
		if i, ok = validString(data, i+1); !ok {
			return i, false
		}
		i = skipSpaceAt(data, i)
		if i >= len(data) || data[i] != ':' {
			return i, false
		}
		if i, ok = validValue(data, skipSpaceAt(data, i+1), depth); !ok {
			return i, false
		}
		var done bool
		if i, done, ok = closeOrNext(data, i, '}'); done || !ok {
			return i, ok
		}
	}
}

func validArray(data []byte, i, depth int) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpaceAt(data, i)
	if i < len(data) && data[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = validValue(data, i, depth); !ok {
			return i, false
		}
		var done bool
		if i, done, ok = closeOrNext(data, i, ']'); done || !ok {
			return i, ok
		}
	}
}

// closeOrNext reads what follows a member or element: the closing bracket (done), or a
// comma and the space after it, leaving i at the next one.
func closeOrNext(data []byte, i int, closing byte) (next int, done, ok bool) {
	i = skipSpaceAt(data, i)
	switch {
	case i >= len(data):
		return i, false, false
	case data[i] == closing:
		return i + 1, true, true
	case data[i] == ',':
		return skipSpaceAt(data, i+1), false, true
	}
	return i, false, false
}

// stopsString marks the bytes that end a run of plain string content.
var stopsString = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// validString checks a string whose opening quote is just before data[i].
func validString(data []byte, i int) (int, bool) {
	for i < len(data) {
		for i < len(data) && !stopsString[data[i]] {
			i++
		}
		if i >= len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(data) {
				return i, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at data[i].
func validNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && isDigit(data[i]):
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return i, false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return i, false
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	return i, true
}

func validLiteral(data []byte, i int, literal string) (int, bool) {
	if len(data)-i < len(literal) || string(data[i:i+len(literal)]) != literal {
		return i, false
	}
	return i + len(literal), true
}
