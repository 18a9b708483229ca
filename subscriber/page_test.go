package subscriber

import (
	"strings"
	"testing"

	"github.com/uts-events/uts"
)

// TestParsePage checks that a read's answer is split into each event's JSON as it came, one
// line each however the answer was laid out, with the page's cursor, and that an answer of
// another shape is an error rather than lines of garbage.
func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		lines        []string
		cursor       uts.Cursor
	}{
		{"compact", `{"events":[{"topic":"a<b>&","payload":{"s":"x, ]}"},"cursor":"7-1"},{"topic":"b","cursor":"7-2"}],"cursor":"7-2"}` + "\n",
			[]string{`{"topic":"a<b>&","payload":{"s":"x, ]}"},"cursor":"7-1"}`, `{"topic":"b","cursor":"7-2"}`}, uts.Cursor{Tx: 7, Seq: 2}},
		{"empty", `{"events":[],"cursor":"42"}`, nil, uts.Cursor{Seq: 42}},
		{"empty with space", `{"events":[ ],"cursor":"42"}`, nil, uts.Cursor{Seq: 42}},
		{"indented", "{\n  \"cursor\": \"3\",\n  \"events\": [\n    {\"topic\": \"a\",\n \"s\": \"x\\ny\", \"cursor\": \"3\"}\n  ]\n}",
			[]string{`{"topic":"a","s":"x\ny","cursor":"3"}`}, uts.Cursor{Seq: 3}},
	} {
		page, err := parsePage([]byte(tc.answer))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var lines []string
		for _, e := range page.Events {
			lines = append(lines, string(e))
		}
		if strings.Join(lines, "|") != strings.Join(tc.lines, "|") || page.Cursor != tc.cursor {
			t.Errorf("%s: lines %q cursor %v; want %q %v", tc.name, lines, page.Cursor, tc.lines, tc.cursor)
		}
	}
	for _, bad := range []string{
		``, `{"events":[{"topic":"a"}],"cursor":"1"`, `[{"topic":"a"}]`, `{"cursor":"1"}`, `{"events":{},"cursor":"1"}`,
		`{"events":[1],"cursor":"1"}`, `{"events":[]}`, `{"events":[],"cursor":"x"}`, `{"events":[{"a":1}] "cursor":"1"}`,
	} {
		if page, err := parsePage([]byte(bad)); err == nil {
			t.Errorf("%q: parsed as %v; want an error", bad, page)
		}
	}
}
