package http

import (
	"net/http"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp := e.do("GET", "/stats", nil)
	mustStatus(t, resp, http.StatusOK)
	var fresh map[string]any
	resp.decode(t, &fresh)
	if topics, ok := fresh["topics"].(map[string]any); !ok || len(topics) != 0 {
		t.Errorf("topics = %v, want {}", fresh["topics"])
	}

	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 3))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("orders", 2, 4))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("users", 0, 1))), http.StatusOK)
	s := e.stats()
	if s.Received != 6 || s.UniqueProcessed != 5 || s.DuplicateDropped != 1 || s.DeadLettered != 0 {
		t.Errorf("counters %+v, want 6 received, 5 unique, 1 duplicate", s.Counters)
	}
	if s.Topics["orders"] != 4 || s.Topics["users"] != 1 || len(s.Topics) != 2 {
		t.Errorf("topics %v, want orders 4, users 1", s.Topics)
	}
	started, err := time.Parse(time.RFC3339, s.StartedAt)
	if err != nil || started.After(time.Now()) {
		t.Errorf("started_at %q: %v", s.StartedAt, err)
	}
	if s.UptimeSeconds < 0 {
		t.Errorf("uptime_seconds %v", s.UptimeSeconds)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/healthz", "/readyz", "/health"} {
		resp := e.do("GET", path, nil)
		mustStatus(t, resp, http.StatusOK)
		var got healthAnswer
		resp.decode(t, &got)
		if got.Status != "ok" {
			t.Errorf("%s: %+v", path, got)
		}
	}

	// A closed store is a store that does not answer.
	e.closeStore()
	for _, path := range []string{"/readyz", "/health"} {
		resp := e.do("GET", path, nil)
		mustStatus(t, resp, http.StatusServiceUnavailable)
		var got healthAnswer
		resp.decode(t, &got)
		if got.Status != "unavailable" || got.Error == "" {
			t.Errorf("%s: %+v", path, got)
		}
	}
	mustStatus(t, e.do("GET", "/healthz", nil), http.StatusOK)

	// A store error reaches the client as a JSON 5xx, the details only in the log.
	for _, path := range []string{"/stats", "/events"} {
		resp := e.do("GET", path, nil)
		if resp.status != http.StatusInternalServerError && resp.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s with a closed store: %d %s, want 500 or 503", path, resp.status, resp.body)
		}
	}
}

// The dashboard's topic table reads topic_stats: each topic's totals, sorted by topic.
func TestStatsPerTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if s := e.stats(); s.TopicStats == nil || len(s.TopicStats) != 0 {
		t.Errorf("topic_stats %v before any event, want []", s.TopicStats)
	}
	conflict := event("orders", 1)
	conflict["payload"] = map[string]any{"n": "other"}
	before := time.Now().Add(-time.Second)
	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 3))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, append(events("orders", 0, 1), conflict))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("users", 0, 2))), http.StatusOK)
	got := e.stats().TopicStats
	if len(got) != 2 || got[0].Topic != "orders" || got[1].Topic != "users" {
		t.Fatalf("topic_stats %+v, want orders then users", got)
	}
	if o := got[0]; o.Unique != 3 || o.Duplicates != 2 || o.Conflicts != 1 {
		t.Errorf("orders %+v, want 3 unique, 2 duplicates, 1 conflict", o)
	}
	if u := got[1]; u.Unique != 2 || u.Duplicates != 0 || u.Conflicts != 0 {
		t.Errorf("users %+v, want 2 unique", u)
	}
	for _, ts := range got {
		if ts.LastEventAt.Before(before) {
			t.Errorf("%s last_event_at %v, want the time of its latest event", ts.Topic, ts.LastEventAt)
		}
	}
}
