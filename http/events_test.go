package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/uts-events/uts"
)

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// walkPages follows Link headers from path and returns every event, bounded in pages.
func walkPages(t *testing.T, e *env, path string) (all []uts.StoredEvent, pages int) {
	t.Helper()
	for path != "" {
		if pages++; pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		resp := e.do("GET", path, nil)
		mustStatus(t, resp, http.StatusOK)
		var page []uts.StoredEvent
		resp.decode(t, &page)
		all = append(all, page...)
		path = ""
		if link := resp.header.Get("Link"); link != "" {
			m := nextLink.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q is not <url>; rel=\"next\"", link)
			}
			path = m[1]
		}
	}
	return all, pages
}

func TestEventsPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("a b&c", 0, 25))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("other", 0, 7))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("a b&c", 25, 30))), http.StatusOK)

	all, pages := walkPages(t, e, "/events?topic=a+b%26c&limit=7")
	if pages != 5 { // 30 events in pages of 7: 7,7,7,7,2
		t.Errorf("%d pages, want 5", pages)
	}
	if len(all) != 30 {
		t.Fatalf("%d events, want 30", len(all))
	}
	for i, ev := range all {
		if want := fmt.Sprintf("a b&c-%d", i); ev.EventID != want || ev.Topic != "a b&c" {
			t.Errorf("event %d is %s/%s, want a b&c/%s in processing order", i, ev.Topic, ev.EventID, want)
		}
		if ev.ProcessedAt.IsZero() || ev.Source != "test" || string(ev.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("event %d incomplete: %+v", i, ev)
		}
	}

	everything, _ := walkPages(t, e, "/events?limit=10")
	if len(everything) != 37 {
		t.Errorf("all topics: %d events, want 37", len(everything))
	}
	exact := e.do("GET", "/events?topic=other&limit=7", nil)
	if link := exact.header.Get("Link"); link != "" {
		t.Errorf("a page that holds the rest exactly has Link %q", link)
	}
	def, _ := walkPages(t, e, "/events")
	if len(def) != 37 {
		t.Errorf("default limit: %d events, want 37", len(def))
	}
}

// TestEventsNewestFirst pages with order=desc: the newest event first, each Link going on
// with before, ending with the oldest; and the NDJSON export in the same order.
func TestEventsNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("a b&c", 0, 25))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("other", 0, 7))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("a b&c", 25, 30))), http.StatusOK)

	newest, pages := walkPages(t, e, "/events?topic=a+b%26c&order=desc&limit=7")
	if pages != 5 || len(newest) != 30 {
		t.Fatalf("%d events in %d pages, want 30 in 5", len(newest), pages)
	}
	for i, ev := range newest {
		if want := fmt.Sprintf("a b&c-%d", 29-i); ev.EventID != want {
			t.Errorf("event %d is %s, want %s: newest first", i, ev.EventID, want)
		}
	}
	oldest, _ := walkPages(t, e, "/events?limit=10")
	everything, _ := walkPages(t, e, "/events?order=desc&limit=10")
	if len(everything) != len(oldest) || len(everything) != 37 {
		t.Fatalf("all topics newest first: %d events, oldest first %d; want 37 each", len(everything), len(oldest))
	}
	for i := range everything {
		if everything[i].Key() != oldest[len(oldest)-1-i].Key() {
			t.Fatalf("event %d newest first is %v, want %v: the reverse of oldest first", i, everything[i].Key(), oldest[len(oldest)-1-i].Key())
		}
	}

	req, err := http.NewRequest("GET", e.server.URL+"/events?topic=other&order=desc", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ndjson)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ids []string
	for lines := bufio.NewScanner(resp.Body); lines.Scan(); {
		var ev uts.StoredEvent
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.EventID)
	}
	if want := "other-6 other-5 other-4 other-3 other-2 other-1 other-0"; strings.Join(ids, " ") != want {
		t.Errorf("NDJSON newest first: %v, want %s", ids, want)
	}
}

func TestEventsEmptyIsArray(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/events", "/events?topic=unknown", "/events?after=999"} {
		resp := e.do("GET", path, nil)
		mustStatus(t, resp, http.StatusOK)
		if got := strings.TrimSpace(string(resp.body)); got != "[]" {
			t.Errorf("GET %s = %s, want []", path, got)
		}
	}
}

func TestEventsBadQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, c := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=10001", "limit"},
		{"limit=ten", "limit"},
		{"limit=-1", "limit"},
		{"after=-1", "after"},
		{"after=x", "after"},
		{"after=1.5", "after"},
		{"after=0-5", "after"},
		{"after=1-2-3", "after"},
		{"after=-5", "after"},
		{"order=newest", "order"},
		{"order=desc&after=3", "after"},
		{"before=3", "before"},
		{"order=desc&before=0", "before"},
		{"order=desc&before=x", "before"},
	} {
		resp := e.do("GET", "/events?"+c.query, nil)
		mustStatus(t, resp, http.StatusUnprocessableEntity)
		var got errorBody
		resp.decode(t, &got)
		if len(got.Details) != 1 || got.Details[0].Field != c.field {
			t.Errorf("%s: details %+v, want one naming %s", c.query, got.Details, c.field)
		}
	}
	mustStatus(t, e.do("GET", "/events?limit=10000&after=0", nil), http.StatusOK)
	mustStatus(t, e.do("GET", "/events?order=asc&after=0", nil), http.StatusOK)
	mustStatus(t, e.do("GET", "/events?order=desc&before=5", nil), http.StatusOK)
}

func TestEventsNDJSONExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// More than one export chunk, so the export pages internally.
	const n = exportChunk*2 + 17
	for from := 0; from < n; from += 500 {
		mustStatus(t, e.publish(mustJSON(t, events("export", from, min(from+500, n)))), http.StatusOK)
	}
	mustStatus(t, e.publish(mustJSON(t, events("noise", 0, 3))), http.StatusOK)

	resp := e.do("GET", "/events?topic=export&limit=5", nil, "Accept", "application/x-ndjson")
	mustStatus(t, resp, http.StatusOK)
	if ct := resp.header.Get("Content-Type"); ct != ndjson {
		t.Errorf("Content-Type %q, want %s", ct, ndjson)
	}
	if resp.header.Get("Link") != "" {
		t.Error("an export has no next page")
	}
	sc := bufio.NewScanner(bytes.NewReader(resp.body))
	count := 0
	for sc.Scan() {
		var ev uts.StoredEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d: %v", count+1, err)
		}
		if want := fmt.Sprintf("export-%d", count); ev.EventID != want {
			t.Fatalf("line %d is %s, want %s", count+1, ev.EventID, want)
		}
		count++
	}
	if count != n {
		t.Errorf("%d lines, want %d (limit must not cut an export)", count, n)
	}

	empty := e.do("GET", "/events?topic=unknown", nil, "Accept", "application/x-ndjson")
	mustStatus(t, empty, http.StatusOK)
	if len(empty.body) != 0 {
		t.Errorf("empty export = %q, want nothing", empty.body)
	}
}

// TestEventsOfSeveralTopics: topic= repeated reads the feed of every topic named, as the
// event stream does, through every page; it used to read the first topic only, silently.
func TestEventsOfSeveralTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("a", 0, 3))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("b", 0, 2))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("c", 0, 2))), http.StatusOK)
	all, _ := walkPages(t, e, "/events?topic=b&topic=a&limit=2")
	var got []string
	for _, ev := range all {
		got = append(got, ev.EventID)
	}
	if want := "a-0 a-1 a-2 b-0 b-1"; strings.Join(got, " ") != want {
		t.Errorf("/events?topic=b&topic=a read %q, want %q", got, want)
	}
}
