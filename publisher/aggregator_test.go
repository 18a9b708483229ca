package publisher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/uts-events/uts"
)

// testAggregator is a small stand-in for the real aggregator, speaking its HTTP API: it
// stores each (topic, event_id) once and counts the rest as duplicates. It is a peer for
// the tests, not a copy of the aggregator's logic.
type testAggregator struct {
	t *testing.T

	// queued makes /publish answer 202 and commit later, a few events per /stats read, as
	// the Redis consumer does.
	queued bool
	// token, when set, is required as a bearer token to publish; readToken to read stats.
	token, readToken string
	// intercept, when set, may answer publish request number n (from 1) itself.
	intercept func(n int, w http.ResponseWriter, r *http.Request) bool
	// skew is added to received on every commit, to make the counts wrong.
	skew int64

	mu       sync.Mutex
	requests int
	bodies   [][]byte
	stored   map[uts.Key]uts.Event
	pending  []uts.Event
	received int64
	unique   int64
	dups     int64
}

func newTestAggregator(t *testing.T, configure func(*testAggregator)) (*testAggregator, *httptest.Server) {
	a := &testAggregator{t: t, stored: map[uts.Key]uts.Event{}}
	if configure != nil {
		configure(a)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", a.publish)
	mux.HandleFunc("GET /stats", a.stats)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *testAggregator) publish(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	n := a.requests
	a.mu.Unlock()
	if a.intercept != nil && a.intercept(n, w, r) {
		return
	}
	if a.token != "" && r.Header.Get("Authorization") != "Bearer "+a.token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "missing or wrong bearer token"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"error": "want application/json"})
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	events, err := decodeEvents(data)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	for i, e := range events {
		if e.Topic == "" || e.EventID == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"error":   "invalid event",
				"details": []uts.FieldError{{Index: i, Field: "topic", Message: "must not be empty"}},
			})
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bodies = append(a.bodies, data)
	if a.queued {
		a.pending = append(a.pending, events...)
		writeJSON(w, http.StatusAccepted, map[string]any{"received": len(events), "queued": len(events)})
		return
	}
	unique, dups := a.commit(events)
	writeJSON(w, http.StatusOK, map[string]any{"received": len(events), "unique": unique, "duplicates": dups})
}

// commit must be called with mu held.
func (a *testAggregator) commit(events []uts.Event) (unique, dups int) {
	for _, e := range events {
		if _, ok := a.stored[e.Key()]; ok {
			dups++
			continue
		}
		a.stored[e.Key()] = e
		unique++
	}
	a.received += int64(len(events)) + a.skew
	a.unique += int64(unique)
	a.dups += int64(dups)
	return unique, dups
}

func (a *testAggregator) stats(w http.ResponseWriter, r *http.Request) {
	if a.readToken != "" && r.Header.Get("Authorization") != "Bearer "+a.readToken {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "missing or wrong bearer token"})
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// A lagging consumer: each read finds only a few more events committed.
	if n := min(len(a.pending), 60); n > 0 {
		a.commit(a.pending[:n])
		a.pending = a.pending[n:]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"received": a.received, "unique_processed": a.unique, "duplicate_dropped": a.dups,
		"duplicate_conflicts": 0, "dead_lettered": 0, "topics": map[string]int{},
		"uptime_seconds": 1.5, "started_at": "2025-01-01T00:00:00Z",
	})
}

func (a *testAggregator) snapshot() (requests int, received, unique, dups int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests, a.received, a.unique, a.dups
}

func decodeEvents(data []byte) ([]uts.Event, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("empty body")
	}
	var events []uts.Event
	switch data[0] {
	case '[':
		err := json.Unmarshal(data, &events)
		return events, err
	case '{':
		var wrapped struct {
			Events []uts.Event `json:"events"`
		}
		if err := json.Unmarshal(data, &wrapped); err == nil && wrapped.Events != nil {
			return wrapped.Events, nil
		}
		var e uts.Event
		err := json.Unmarshal(data, &e)
		return []uts.Event{e}, err
	}
	return nil, fmt.Errorf("not a JSON object or array")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// closeConnection drops the connection without an answer, as a crashing server would.
func closeConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}
