package publisher

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunGivesUpOnADeadAggregator: against a server that always answers 503, or a port
// nothing listens on, a run that would retry each request a thousand times stops once no
// request has succeeded for GiveUpAfter, with an error that says so and its accounting.
func TestRunGivesUpOnADeadAggregator(t *testing.T) {
	t.Parallel()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"the store is unreachable"}`))
	}))
	t.Cleanup(failing.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	for name, url := range map[string]string{"503": failing.URL, "closed port": closed} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(url)
			cfg.Events, cfg.Batch, cfg.Concurrency = 1_000, 10, 2
			cfg.Retry = RetryPolicy{MaxAttempts: 1_000, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}
			cfg.GiveUpAfter = 300 * time.Millisecond
			start := time.Now()
			s, err := Run(testContext(t), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), "gave up: no request succeeded") {
				t.Fatalf("err %v, want a give-up", err)
			}
			// A thousand attempts per request would take well over 10 s each.
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("ran %v after giving up at 300ms", elapsed)
			}
			if !s.GaveUp || s.Sent != 0 || s.FailedEvents == 0 || s.FailedEvents != s.Generated || s.Generated >= 1_000 {
				t.Errorf("summary %+v: want gave up, nothing sent, the generated events failed, not all generated", s)
			}
			want := "0 events acknowledged"
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "never sent") {
				t.Errorf("err %q does not give the accounting", err)
			}
			var text strings.Builder
			if err := s.WriteText(&text); err != nil || !strings.HasPrefix(text.String(), "publisher gave up") {
				t.Errorf("summary text %q", text.String())
			}
		})
	}
}

// TestRunDoesNotGiveUpWhileRequestsSucceed: failures with successes between them never add
// up to a give-up, however long the run: only continuous failure counts.
func TestRunDoesNotGiveUpWhileRequestsSucceed(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1)%3 != 0 { // two failures, then a success
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"busy"}`))
			return
		}
		_, _ = w.Write([]byte(`{"received":10,"unique":10,"duplicates":0}`))
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	// Paced to last about 600 ms, twice the give-up time; each request fails for a few ms.
	cfg.Events, cfg.Batch, cfg.Concurrency, cfg.Rate = 600, 10, 1, 1_000
	cfg.GiveUpAfter = 300 * time.Millisecond
	s, err := Run(testContext(t), cfg, nil)
	if err != nil || s.GaveUp || s.Sent != 600 {
		t.Fatalf("err %v, summary %+v: want all 600 sent, no give-up", err, s)
	}
	if s.Retries != 120 {
		t.Fatalf("%d retries, want 120: two per request", s.Retries)
	}
}
