package http

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

func TestPublishShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	one := mustJSON(t, event("shapes", 0))
	array := mustJSON(t, events("shapes", 1, 4))
	envelope := mustJSON(t, map[string]any{"events": events("shapes", 4, 6)})

	for _, c := range []struct {
		name string
		body []byte
		want committedAnswer
	}{
		{"one event", one, committedAnswer{Received: 1, Unique: 1}},
		{"array", array, committedAnswer{Received: 3, Unique: 3}},
		{"envelope", envelope, committedAnswer{Received: 2, Unique: 2}},
		{"array again", array, committedAnswer{Received: 3, Duplicates: 3}},
	} {
		resp := e.publish(c.body)
		mustStatus(t, resp, http.StatusOK)
		var got committedAnswer
		resp.decode(t, &got)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestPublishResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, event("results", 0))), http.StatusOK)

	conflicting := event("results", 1)
	conflicting["payload"] = map[string]any{"other": true}
	batch := []map[string]any{event("results", 0), event("results", 1), conflicting, event("results", 2)}
	resp := e.do("POST", "/publish?results=true", mustJSON(t, batch))
	mustStatus(t, resp, http.StatusOK)
	var got struct {
		Received, Unique, Duplicates int
		Results                      []string
	}
	resp.decode(t, &got)
	want := []string{"duplicate", "new", "conflict", "new"}
	if !slices.Equal(got.Results, want) || got.Received != 4 || got.Unique != 2 || got.Duplicates != 2 {
		t.Errorf("got %+v, want results %v, 4 received, 2 unique, 2 duplicates", got, want)
	}

	resp = e.publish(mustJSON(t, event("results", 3)))
	if bytes.Contains(resp.body, []byte("results")) {
		t.Errorf("results sent without ?results=true: %s", resp.body)
	}
	s := e.stats()
	if s.DuplicateConflicts != 1 || s.UniqueProcessed != 4 || s.DuplicateDropped != 2 {
		t.Errorf("stats %+v, want 4 unique, 2 duplicates of which 1 conflict", s.Counters)
	}
}

func TestPublishContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for i, c := range []struct {
		contentType string
		want        int
	}{
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"application/cloudevents-batch+json", http.StatusOK},
		{"", http.StatusOK},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"application/xml", http.StatusUnsupportedMediaType},
		{"not a media type;;", http.StatusUnsupportedMediaType},
	} {
		var headers []string
		if c.contentType != "" {
			headers = []string{"Content-Type", c.contentType}
		}
		resp := e.do("POST", "/publish", mustJSON(t, event("ctype", i)), headers...)
		if resp.status != c.want {
			t.Errorf("Content-Type %q: status %d, want %d; %s", c.contentType, resp.status, c.want, resp.body)
		}
	}
	if s := e.stats(); s.Received != 4 {
		t.Errorf("received %d, want 4: a 415 must count nothing", s.Received)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	lim := uts.Limits{MaxBodyBytes: 4096, MaxBatchEvents: 5, MaxEventBytes: 1024}
	e := newEnv(t, envOptions{limits: lim})
	bad := func(field string, v any) []byte {
		ev := event("errors", 0)
		ev[field] = v
		return mustJSON(t, ev)
	}
	big := event("errors", 0)
	big["payload"] = map[string]any{"pad": strings.Repeat("x", 2000)}

	for _, c := range []struct {
		name    string
		path    string
		body    []byte
		status  int
		details []uts.FieldError // index and field; messages are free text
	}{
		{"not JSON", "/publish", []byte(`{"topic":`), http.StatusBadRequest, nil},
		{"empty body", "/publish", []byte(``), http.StatusBadRequest, nil},
		{"body too large", "/publish", mustJSON(t, map[string]any{"events": events("errors", 0, 40)}), http.StatusRequestEntityTooLarge, nil},
		{"empty array", "/publish", []byte(`[]`), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "events"}}},
		{"empty envelope", "/publish", []byte(`{"events":[]}`), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "events"}}},
		{"too many events", "/publish", mustJSON(t, events("errors", 0, 6)), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 5, Field: "events"}}},
		{"oversized event", "/publish", mustJSON(t, []any{event("errors", 0), big}), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 1, Field: "event"}}},
		{"not an object", "/publish", []byte(`"hello"`), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "event"}}},
		{"events not an array", "/publish", []byte(`{"events":{}}`), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "events"}}},
		{"missing topic", "/publish", bad("topic", nil), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "topic"}}},
		{"empty event_id", "/publish", bad("event_id", ""), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "event_id"}}},
		{"numeric source", "/publish", bad("source", 7), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "source"}}},
		{"bad timestamp", "/publish", bad("timestamp", "yesterday"), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "timestamp"}}},
		{"payload not an object", "/publish", bad("payload", []int{1}), http.StatusUnprocessableEntity, []uts.FieldError{{Index: 0, Field: "payload"}}},
		{"results not a bool", "/publish?results=maybe", mustJSON(t, event("errors", 0)), http.StatusUnprocessableEntity, []uts.FieldError{{Field: "results", In: "query"}}},
	} {
		resp := e.do("POST", c.path, c.body, "Content-Type", "application/json")
		if resp.status != c.status {
			t.Errorf("%s: status %d, want %d; %s", c.name, resp.status, c.status, resp.body)
			continue
		}
		var got errorBody
		resp.decode(t, &got)
		if got.Error == "" {
			t.Errorf("%s: no error message: %s", c.name, resp.body)
		}
		for _, want := range c.details {
			if !slices.ContainsFunc(got.Details, func(d uts.FieldError) bool {
				return d.Index == want.Index && d.Field == want.Field && d.In == want.In && d.Message != ""
			}) {
				t.Errorf("%s: details %+v do not name index %d field %s", c.name, got.Details, want.Index, want.Field)
			}
		}
	}
	if s := e.stats(); s.Received != 0 || s.UniqueProcessed != 0 || len(s.Topics) != 0 {
		t.Errorf("rejected requests changed the stats: %+v", s)
	}
}

func TestPublishBodyLimitWithoutContentLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{limits: uts.Limits{MaxBodyBytes: 1024}})
	// A chunked body announces no length, so only reading it can find it too large.
	req, err := http.NewRequest("POST", e.server.URL+"/publish", strings.NewReader(string(mustJSON(t, events("chunked", 0, 20)))))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

func TestPublishQueueFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{queueEvents: 4, deferConsume: true})

	// With no consumer running, a batch of 4 waits in the queue and fills it.
	waiting := make(chan response, 1)
	go func() {
		resp, err := e.send("POST", "/publish", mustJSON(t, events("full", 0, 4)), "Content-Type", "application/json")
		if err != nil {
			t.Errorf("waiting publish: %v", err)
		}
		waiting <- resp
	}()
	waitFor(t, "the first batch to be queued", func() bool {
		depth, _ := e.broker.Depth(t.Context())
		return depth == 4
	})

	resp := e.publish(mustJSON(t, events("full", 4, 6)))
	mustStatus(t, resp, http.StatusServiceUnavailable)
	if got := resp.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	ready := e.do("GET", "/readyz", nil)
	mustStatus(t, ready, http.StatusServiceUnavailable)
	if s := e.stats(); s.QueueDepth != 4 || s.Received != 0 {
		t.Errorf("queue_depth %d received %d, want 4 queued and none received yet", s.QueueDepth, s.Received)
	}

	e.startConsume()
	mustStatus(t, <-waiting, http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("full", 4, 6))), http.StatusOK)
	mustStatus(t, e.do("GET", "/readyz", nil), http.StatusOK)
	if s := e.stats(); s.UniqueProcessed != 6 || s.Received != 6 || s.QueueDepth != 0 {
		t.Errorf("stats %+v depth %d, want 6 received and unique, depth 0", s.Counters, s.QueueDepth)
	}
}

func TestMethodAndRouteErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp := e.do("GET", "/publish", nil)
	mustStatus(t, resp, http.StatusMethodNotAllowed)
	if allow := resp.header.Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q, want POST", allow)
	}
	mustStatus(t, e.do("DELETE", "/events", nil), http.StatusMethodNotAllowed)
	mustStatus(t, e.do("POST", "/stats", nil), http.StatusMethodNotAllowed)
	mustStatus(t, e.do("GET", "/nope", nil), http.StatusNotFound)
	// "/" is the dashboard, and only "/": the paths below it are still unknown.
	mustStatus(t, e.do("GET", "/nope/", nil), http.StatusNotFound)
	mustStatus(t, e.do("POST", "/", nil), http.StatusMethodNotAllowed)
	// Bodies are JSON errors: the doc-checking transport validated them against Error.
}

// With the Redis broker, a publish is answered once queued: 202, and no outcomes yet.
func TestPublishQueued(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	e := newEnv(t, envOptions{redisURL: url, deferConsume: true})
	body := mustJSON(t, events("queued", 0, 3))
	resp := e.do("POST", "/publish?results=true", body, "Content-Type", "application/json")
	mustStatus(t, resp, http.StatusAccepted)
	var got map[string]int
	resp.decode(t, &got)
	if len(got) != 2 || got["received"] != 3 || got["queued"] != 3 {
		t.Errorf("answer %s, want exactly received 3 and queued 3", resp.body)
	}
	if s := e.stats(); s.QueueDepth != 3 || s.Received != 0 {
		t.Errorf("before consuming: queue_depth %d received %d, want 3 and 0", s.QueueDepth, s.Received)
	}

	e.startConsume()
	waitFor(t, "the consumer to store the queued events", func() bool { return e.stats().Received == 3 })
	mustStatus(t, e.publish(body), http.StatusAccepted)
	waitFor(t, "the consumer to count the duplicates", func() bool { return e.stats().Received == 6 })
	if s := e.stats(); s.UniqueProcessed != 3 || s.DuplicateDropped != 3 || s.QueueDepth != 0 {
		t.Errorf("stats %+v depth %d, want 3 unique, 3 duplicates, depth 0", s.Counters, s.QueueDepth)
	}
}

// TestCountsAnswerMatchesWriteJSON holds the hand-built publish answer to what writeJSON
// wrote for it, byte for byte.
func TestCountsAnswerMatchesWriteJSON(t *testing.T) {
	for _, a := range []committedAnswer{{}, {Received: 1, Unique: 1}, {Received: 10000, Unique: 6999, Duplicates: 3001}} {
		if got, want := appendCountsAnswer(nil, a), writeJSONBodyOf(a); !bytes.Equal(got, want) {
			t.Errorf("%+v: got %q, want %q", a, got, want)
		}
	}
}
