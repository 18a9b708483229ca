package http

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uts-events/uts"
)

// TestQueryParamsAreDocumented holds the list of parameters each API route takes, which the
// server enforces, equal to the parameters openapi.json documents for it.
func TestQueryParamsAreDocumented(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	for pattern, allowed := range queryParams {
		method, path, _ := strings.Cut(pattern, " ")
		_, op := doc.operation(method, path)
		if op == nil {
			t.Errorf("%s is not documented", pattern)
			continue
		}
		var documented []string
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			if p := p.(map[string]any); p["in"] == "query" {
				documented = append(documented, p["name"].(string))
			}
		}
		slices.Sort(documented)
		want := slices.Sorted(slices.Values(allowed))
		if !slices.Equal(documented, want) {
			t.Errorf("%s takes %v, openapi.json documents %v", pattern, want, documented)
		}
	}
}

func TestUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, c := range []struct {
		method, path string
		unknown      []string
	}{
		{"GET", "/events?limt=5", []string{"limt"}},
		{"GET", "/events?topic=a&Topic=b&x=1", []string{"Topic", "x"}},
		{"GET", "/stats?verbose=1", []string{"verbose"}},
		{"POST", "/publish?result=true", []string{"result"}},
	} {
		var body []byte
		if c.method == "POST" {
			body = mustJSON(t, event("params", 0))
		}
		resp := e.do(c.method, c.path, body)
		mustStatus(t, resp, http.StatusUnprocessableEntity)
		var got errorBody
		resp.decode(t, &got)
		var named []string
		for _, d := range got.Details {
			named = append(named, d.Field)
			if d.In != "query" || d.Message == "" {
				t.Errorf("%s: detail %+v, want in=query and a message", c.path, d)
			}
		}
		if !slices.Equal(named, c.unknown) {
			t.Errorf("%s: details name %v, want %v", c.path, named, c.unknown)
		}
		if bytes.Contains(resp.body, []byte(`"index"`)) {
			t.Errorf("%s: a query parameter's error carries an index: %s", c.path, resp.body)
		}
	}
	if s := e.stats(); s.Received != 0 {
		t.Errorf("received %d: a publish with an unknown parameter must take nothing", s.Received)
	}
	// The parameters each route takes, and the pages whose callers add their own.
	mustStatus(t, e.do("GET", "/events?topic=a&limit=2&offset=1&order=desc", nil), http.StatusOK)
	mustStatus(t, e.do("POST", "/publish?results=true", mustJSON(t, event("params", 1))), http.StatusOK)
	for _, path := range []string{"/?utm_source=x", "/openapi.json?v=2", "/docs/?url=/openapi.json", "/healthz?probe=1"} {
		mustStatus(t, e.do("GET", path, nil), http.StatusOK)
	}
}

func TestEventsOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("offset", 0, 10))), http.StatusOK)
	ids := func(path string) ([]string, string) {
		t.Helper()
		resp := e.do("GET", path, nil)
		mustStatus(t, resp, http.StatusOK)
		var page []uts.StoredEvent
		resp.decode(t, &page)
		var out []string
		for _, ev := range page {
			out = append(out, strings.TrimPrefix(ev.EventID, "offset-"))
		}
		return out, resp.header.Get("Link")
	}
	got, link := ids("/events?offset=3&limit=4")
	if !slices.Equal(got, []string{"3", "4", "5", "6"}) {
		t.Errorf("offset=3&limit=4: %v", got)
	}
	// The next page goes on from the last event's cursor, the offset spent.
	m := nextLink.FindStringSubmatch(link)
	if m == nil || strings.Contains(m[1], "offset") {
		t.Fatalf("Link %q", link)
	}
	if next, _ := ids(m[1]); !slices.Equal(next, []string{"7", "8", "9"}) {
		t.Errorf("the page after offset=3&limit=4: %v", next)
	}
	if got, _ := ids("/events?order=desc&offset=2&limit=2"); !slices.Equal(got, []string{"7", "6"}) {
		t.Errorf("order=desc&offset=2&limit=2: %v", got)
	}
	if got, _ := ids("/events?offset=10"); len(got) != 0 {
		t.Errorf("offset past the end: %v", got)
	}
	resp := e.do("GET", "/events?offset=8", nil, "Accept", ndjson)
	mustStatus(t, resp, http.StatusOK)
	var lines []string
	for sc := bufio.NewScanner(bytes.NewReader(resp.body)); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 2 || !strings.Contains(lines[0], `"offset-8"`) {
		t.Errorf("NDJSON with offset=8: %q", lines)
	}
	for _, q := range []string{"offset=-1", "offset=x", "offset=100001", "offset=1&wait=1s"} {
		resp := e.do("GET", "/events?"+q, nil)
		mustStatus(t, resp, http.StatusUnprocessableEntity)
		if !bytes.Contains(resp.body, []byte(`"field":"offset"`)) {
			t.Errorf("%s: %s does not name offset", q, resp.body)
		}
	}
}

// TestJSONIsNotHTMLEscaped: a payload reads back as it was sent, < > & and all, in pages,
// exports and error messages.
func TestJSONIsNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ev := event("html", 0)
	ev["payload"] = map[string]any{"markup": "<b>a & b</b>"}
	mustStatus(t, e.publish(mustJSON(t, ev)), http.StatusOK)
	page := e.do("GET", "/events?topic=html", nil)
	export := e.do("GET", "/events?topic=html", nil, "Accept", ndjson)
	bad := e.do("GET", "/events?limit=<1>", nil)
	for name, body := range map[string][]byte{"page": page.body, "export": export.body, "error": bad.body} {
		if bytes.Contains(body, []byte(`\u003c`)) || bytes.Contains(body, []byte(`\u0026`)) {
			t.Errorf("%s is HTML-escaped: %s", name, body)
		}
	}
	if !bytes.Contains(page.body, []byte(`"<b>a & b</b>"`)) {
		t.Errorf("page %s lacks the payload as sent", page.body)
	}
}
