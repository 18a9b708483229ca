package http

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/sqlite"
)

// The edges fuzzed through the real handler, broker, consumer and SQLite store: whatever a
// client sends, the answer is JSON, never a 5xx, and a request that gets a 4xx changes no
// counter and stores nothing. Without -fuzz, go test runs the seeds and the corpus in
// testdata/fuzz/ only, which keeps CI bounded; run one with
// go test -run XXX -fuzz FuzzPublish ./http

// fuzzAggregator is one aggregator for a whole fuzz run: starting one per input would
// leave little time for the inputs.
func fuzzAggregator(f *testing.F) (http.Handler, *sqlite.Store) {
	store, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "uts.db"))
	if err != nil {
		f.Fatalf("open store: %v", err)
	}
	broker := inproc.New(inproc.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() { consumed <- broker.Consume(ctx, consumer.New(store, nil).Commit) }()
	f.Cleanup(func() {
		cancel()
		<-consumed
		store.Close()
	})
	return NewHandler(Config{Store: store, Broker: broker}), store
}

// snapshot is what a request must leave alone when it is refused.
type snapshot struct {
	counters uts.Counters
	stored   int
}

func snapshotOf(t *testing.T, store uts.Store) snapshot {
	t.Helper()
	st, err := store.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	events, err := store.Events(context.Background(), uts.EventQuery{Limit: 1_000_000})
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	return snapshot{st.Counters, len(events)}
}

// wantJSONAnswer checks what every answer of the API must be: JSON, and no 5xx; an error
// names itself in "error".
func wantJSONAnswer(t *testing.T, rec *httptest.ResponseRecorder, request string) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", request, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want JSON", request, ct)
	}
	if rec.Code >= 400 {
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Fatalf("%s: status %d with body %q: not an error body", request, rec.Code, rec.Body)
		}
	}
}

func FuzzPublish(f *testing.F) {
	event := `{"topic":"orders","event_id":"a1","timestamp":"2026-11-25T10:00:00Z","source":"checkout","payload":{"total":12.5}}`
	for _, seed := range []struct{ body, query, contentType string }{
		{event, "", "application/json"},
		{"[" + event + "," + event + "]", "results=true", "application/json"},
		{`{"events":[` + event + `]}`, "", ""},
		{`{"topic":"","event_id":"x","timestamp":"2026-11-25T10:00:00Z","source":"s"}`, "", "application/json"},
		{`{"topic":"t","event_id":"x","timestamp":"not a time","source":"s","payload":[]}`, "", "application/json"},
		{`[]`, "", "application/json"},
		{`{"topic":"t","event_id":"x","timestamp":"2026-11-25T10:00:00+24:00","source":"s"}`, "", "application/json"},
		{`{"topic":"t","event_id":"\ud800","timestamp":"2026-11-25T10:00:00Z","source":"s"}`, "", "application/json"},
		{"{\"topic\":\"t\",\"event_id\":\"x\",\"timestamp\":\"2026-11-25T10:00:00Z\",\"source\":\"s\",\"payload\":{\"n\":\"\xff\"}}", "", "application/json"},
		{`not json`, "", "application/json"},
		{event, "", "text/plain"},
		{event, "results=maybe", "application/json"},
	} {
		f.Add([]byte(seed.body), seed.query, seed.contentType)
	}
	handler, store := fuzzAggregator(f)
	f.Fuzz(func(t *testing.T, body []byte, query, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(string(body)))
		req.URL.RawQuery = query
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		before := snapshotOf(t, store)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		wantJSONAnswer(t, rec, "POST /publish?"+query)
		after := snapshotOf(t, store)
		if rec.Code >= 400 && after != before {
			t.Fatalf("a %d changed the store: %+v, then %+v", rec.Code, before, after)
		}
		if rec.Code == http.StatusOK {
			var a struct{ Received, Unique int }
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
				t.Fatalf("200 with body %q: %v", rec.Body, err)
			}
			grew := after.counters.Received - before.counters.Received
			if grew != int64(a.Received) || after.stored-before.stored != a.Unique {
				t.Fatalf("answered %+v, but received grew by %d and the stored events by %d", a, grew, after.stored-before.stored)
			}
		}
	})
}

func FuzzEventsQuery(f *testing.F) {
	for _, seed := range []string{
		"", "limit=10", "topic=orders&limit=1", "after=5", "after=12-34", "order=desc&before=3",
		"limit=0", "after=-1", "after=0-5", "order=up", "wait=1ms", "wait=61s", "before=1", "topic=%ff",
	} {
		f.Add(seed)
	}
	handler, store := fuzzAggregator(f)
	// Something to read, so that paging and cursors have events to walk.
	seed := httptest.NewRecorder()
	handler.ServeHTTP(seed, httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(
		`[{"topic":"orders","event_id":"1","timestamp":"2026-11-25T10:00:00Z","source":"s"},
		  {"topic":"refunds","event_id":"1","timestamp":"2026-11-25T10:00:00Z","source":"s"}]`)))
	if seed.Code != http.StatusOK {
		f.Fatalf("seed publish: %d %s", seed.Code, seed.Body)
	}
	f.Fuzz(func(t *testing.T, query string) {
		if params, err := url.ParseQuery(query); err == nil && params.Has("wait") {
			t.Skip("a wait would only slow the fuzzer down; the wait tests cover it")
		}
		before := snapshotOf(t, store)
		req := httptest.NewRequest(http.MethodGet, "/events", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		wantJSONAnswer(t, rec, "GET /events?"+query)
		if rec.Code == http.StatusOK {
			var page []json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatalf("GET /events?%s: 200 with body %q: %v", query, rec.Body, err)
			}
		}
		if after := snapshotOf(t, store); after != before {
			t.Fatalf("GET /events?%s changed the store: %+v, then %+v", query, before, after)
		}
	})
}
