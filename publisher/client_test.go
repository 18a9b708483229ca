package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry keeps real waits out of the tests.
var fastRetry = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// newRecordingClient returns a client whose waits are noted instead of taken.
func newRecordingClient(t *testing.T, urls ...string) (*Client, func() []time.Duration) {
	t.Helper()
	c, err := NewClient(ClientConfig{URLs: urls, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

func oneEventBody(t *testing.T) []byte {
	t.Helper()
	g, err := NewGenerator(11, 1, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, g.Event(0))
}

func TestPublishRetries503HonouringRetryAfter(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n > 2 {
				return false
			}
			w.Header().Set("Retry-After", "7")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "queue full"})
			return true
		}
	})
	c, waits := newRecordingClient(t, srv.URL)
	reply, err := c.Publish(testContext(t), oneEventBody(t))
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != http.StatusOK || reply.Attempts != 3 || reply.Unique != 1 {
		t.Fatalf("reply = %+v; want 200 after 3 attempts with 1 unique", reply)
	}
	// Retry-After (7 s) is far above the policy's 5 ms ceiling, so it alone sets the wait.
	if got := waits(); len(got) != 2 || got[0] != 7*time.Second || got[1] != 7*time.Second {
		t.Fatalf("waits = %v, want [7s 7s]", got)
	}
	if _, received, _, _ := agg.snapshot(); received != 1 {
		t.Fatalf("aggregator received %d events, want 1", received)
	}
}

func TestPublishRetries500WithJitteredBackoff(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		}
	})
	c, waits := newRecordingClient(t, srv.URL)
	reply, err := c.Publish(testContext(t), oneEventBody(t))
	if err != nil {
		t.Fatal(err)
	}
	if reply.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2", reply.Attempts)
	}
	if got := waits(); len(got) != 1 || got[0] < 0 || got[0] > fastRetry.BaseDelay {
		t.Fatalf("waits = %v, want one in [0, %v]", got, fastRetry.BaseDelay)
	}
}

func TestPublishRetriesAfterClosedConnection(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				closeConnection(w)
				return true
			}
			return false
		}
	})
	c, _ := newRecordingClient(t, srv.URL)
	reply, err := c.Publish(testContext(t), oneEventBody(t))
	if err != nil {
		t.Fatal(err)
	}
	requests, received, _, _ := agg.snapshot()
	if reply.Attempts != 2 || requests != 2 || received != 1 {
		t.Fatalf("attempts %d, server saw %d requests and %d events; want 2, 2, 1", reply.Attempts, requests, received)
	}
}

func TestPublishDoesNotRetry422(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, nil)
	c, waits := newRecordingClient(t, srv.URL)
	reply, err := c.Publish(testContext(t), []byte(`[{"topic":"","event_id":"x"}]`))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity {
		t.Fatalf("err = %v, want a 422 StatusError", err)
	}
	if len(se.Details) != 1 || se.Details[0] != (uts.FieldError{Index: 0, Field: "topic", Message: "must not be empty"}) {
		t.Fatalf("details = %+v", se.Details)
	}
	if requests, _, _, _ := agg.snapshot(); reply.Attempts != 1 || requests != 1 || len(waits()) != 0 {
		t.Fatalf("attempts %d, requests %d, waits %v; want one attempt and no wait", reply.Attempts, requests, waits())
	}
}

func TestPublishGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "still down", http.StatusBadGateway)
			return true
		}
	})
	c, _ := newRecordingClient(t, srv.URL)
	reply, err := c.Publish(testContext(t), oneEventBody(t))
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadGateway {
		t.Fatalf("err = %v, want a 502 StatusError", err)
	}
	if requests, _, _, _ := agg.snapshot(); reply.Attempts != fastRetry.MaxAttempts || requests != fastRetry.MaxAttempts {
		t.Fatalf("attempts %d, requests %d; want %d", reply.Attempts, requests, fastRetry.MaxAttempts)
	}
}

func TestPublishSpreadsRequestsRoundRobin(t *testing.T) {
	t.Parallel()
	var aggs []*testAggregator
	var urls []string
	for range 3 {
		a, srv := newTestAggregator(t, nil)
		aggs = append(aggs, a)
		urls = append(urls, srv.URL+"/") // a trailing slash must not double up
	}
	c, _ := newRecordingClient(t, urls...)
	ctx := testContext(t)
	for range 9 {
		if _, err := c.Publish(ctx, oneEventBody(t)); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range aggs {
		if requests, _, _, _ := a.snapshot(); requests != 3 {
			t.Errorf("aggregator %d got %d requests, want 3", i, requests)
		}
	}
}

func TestPublishMovesToTheNextURLOnNetworkError(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // its port now refuses connections
	agg, live := newTestAggregator(t, nil)
	c, _ := newRecordingClient(t, dead.URL, live.URL)
	ctx := testContext(t)
	for i := range 4 {
		reply, err := c.Publish(ctx, oneEventBody(t))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		// Requests that start at the dead URL need a second attempt.
		if want := 2 - i%2; reply.Attempts != want {
			t.Fatalf("request %d took %d attempts, want %d", i, reply.Attempts, want)
		}
	}
	if requests, _, _, _ := agg.snapshot(); requests != 4 {
		t.Fatalf("the live aggregator got %d requests, want 4", requests)
	}
}

func TestStatsReadsCounters(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, nil)
	c, _ := newRecordingClient(t, srv.URL)
	ctx := testContext(t)
	if _, err := c.PublishEvents(ctx, uts.Event{Topic: "a", EventID: "1", Timestamp: eventEpoch, Source: "s", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Received != 1 || s.UniqueProcessed != 1 || s.UptimeSeconds != 1.5 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Wed, 01 Jan 2025 12:00:10 GMT": 10 * time.Second,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRetryDelayStaysUnderItsCeiling(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 10, BaseDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}
	for attempt := 1; attempt <= 10; attempt++ {
		ceiling := min(p.BaseDelay<<(attempt-1), p.MaxDelay)
		for range 100 {
			if d := p.delay(attempt, 0); d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
}

// TestReadCounts holds the hand-read answer to json.Unmarshal: the same counts for the
// aggregator's usual answer, and nothing read from any other, which Unmarshal then reads.
func TestReadCounts(t *testing.T) {
	for _, body := range []string{
		"{\"received\":1,\"unique\":1,\"duplicates\":0}\n",
		`{"received":10000,"unique":6999,"duplicates":3001}`,
		`{"received":0,"unique":0,"duplicates":0}`,
	} {
		var got, want Reply
		if !readCounts([]byte(body), &got) {
			t.Errorf("%q: not read", body)
			continue
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if got.Received != want.Received || got.Unique != want.Unique || got.Duplicates != want.Duplicates {
			t.Errorf("%q: %+v, want %+v", body, got, want)
		}
	}
	for _, body := range []string{
		`{"received":2,"queued":2}`,
		`{"received":1,"unique":1,"duplicates":0,"results":["new"]}`,
		`{"received":01,"unique":1,"duplicates":0}`,
		`{"received":1234567890,"unique":1,"duplicates":0}`,
		`{"received":-1,"unique":1,"duplicates":0}`,
		`{"received":1,"unique":1,"duplicates":0}x`,
		` {"received":1,"unique":1,"duplicates":0}`,
		``,
	} {
		var got Reply
		if readCounts([]byte(body), &got) || got.Received != 0 || got.Unique != 0 || got.Duplicates != 0 {
			t.Errorf("%q: read as %+v, want it left to json.Unmarshal", body, got)
		}
	}
}
