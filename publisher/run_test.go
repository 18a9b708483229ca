package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

func testConfig(urls ...string) Config {
	cfg := DefaultConfig()
	cfg.URLs = urls
	cfg.Retry = fastRetry
	cfg.Timeout = 10 * time.Second
	cfg.VerifyTimeout = 10 * time.Second
	cfg.Seed = 1
	return cfg
}

func TestRunDeliversEveryEventOnce(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Duplicates, cfg.Topics, cfg.Batch, cfg.Concurrency = 2_000, 0.3, 5, 50, 4
	cfg.Verify = true
	s, err := Run(testContext(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Generated != 2_000 || s.Sent != 2_000 || s.Distinct != 1_400 || s.Duplicates != 600 {
		t.Fatalf("summary counts %+v; want 2000 sent, 1400 distinct, 600 duplicates", s)
	}
	if s.Requests != 40 || s.Retries != 0 || s.Failures != 0 || s.Committed != 40 {
		t.Fatalf("requests %d, retries %d, failures %d, committed %d; want 40, 0, 0, 40", s.Requests, s.Retries, s.Failures, s.Committed)
	}
	if s.ServerUnique != 1_400 || s.ServerDuplicates != 600 {
		t.Fatalf("server reported %d unique, %d duplicates", s.ServerUnique, s.ServerDuplicates)
	}
	if _, received, unique, dups := agg.snapshot(); received != 2_000 || unique != 1_400 || dups != 600 {
		t.Fatalf("aggregator counted %d received, %d unique, %d duplicates", received, unique, dups)
	}
	if s.Verify == nil || !s.Verify.OK {
		t.Fatalf("verify = %+v, want ok", s.Verify)
	}
	if s.Latency.P50 <= 0 || s.Latency.P50 > s.Latency.P95 || s.Latency.P95 > s.Latency.P99 || s.Latency.P99 > s.Latency.Max {
		t.Fatalf("latency %+v is not ordered", s.Latency)
	}
}

func TestRunBatchOneSendsBareObjects(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Batch, cfg.Concurrency = 20, 1, 2
	if _, err := Run(testContext(t), cfg, nil); err != nil {
		t.Fatal(err)
	}
	agg.mu.Lock()
	defer agg.mu.Unlock()
	if len(agg.bodies) != 20 {
		t.Fatalf("%d requests, want 20", len(agg.bodies))
	}
	for _, b := range agg.bodies {
		if b[0] != '{' {
			t.Fatalf("body %s is not a bare object", b)
		}
	}
}

func TestRunRidesOutOverloadAndCrashes(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			switch n % 4 {
			case 1:
				w.Header().Set("Retry-After", "0")
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "queue full"})
				return true
			case 2:
				closeConnection(w)
				return true
			}
			return false
		}
	})
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Duplicates, cfg.Batch, cfg.Concurrency = 1_000, 0.2, 25, 4
	cfg.Retry.MaxAttempts = 20
	cfg.Verify = true
	s, err := Run(testContext(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != 1_000 || s.Distinct != 800 || s.Retries == 0 || s.Failures != 0 {
		t.Fatalf("summary %+v; want all 1000 sent (800 distinct) after some retries", s)
	}
	if _, _, unique, _ := agg.snapshot(); unique != 800 {
		t.Fatalf("aggregator stored %d, want 800", unique)
	}
}

func TestRunReportsTerminalFailures(t *testing.T) {
	t.Parallel()
	agg, srv := newTestAggregator(t, func(a *testAggregator) { a.token, a.readToken = "secret", "reader" })
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Batch = 100, 10
	cfg.ReadToken = "reader"
	s, err := Run(testContext(t), cfg, nil)
	if err == nil || s.Failures != 10 || s.FailedEvents != 100 || s.Sent != 0 || s.Retries != 0 {
		t.Fatalf("without a token: err %v, summary %+v; want 10 failed requests, no retries", err, s)
	}
	if len(s.Errors) == 0 || !strings.Contains(s.Errors[0], "401") {
		t.Fatalf("errors %q do not mention the 401", s.Errors)
	}

	cfg.Token, cfg.Verify = "secret", true
	if s, err = Run(testContext(t), cfg, nil); err != nil || s.Sent != 100 || !s.Verify.OK {
		t.Fatalf("with the tokens: err %v, summary %+v", err, s)
	}
	if _, received, _, _ := agg.snapshot(); received != 100 {
		t.Fatalf("aggregator received %d, want 100", received)
	}
}

func TestRunSpreadsOverURLs(t *testing.T) {
	t.Parallel()
	a1, s1 := newTestAggregator(t, nil)
	a2, s2 := newTestAggregator(t, nil)
	cfg := testConfig(s1.URL, s2.URL)
	cfg.Events, cfg.Batch, cfg.Concurrency = 400, 10, 3
	if _, err := Run(testContext(t), cfg, nil); err != nil {
		t.Fatal(err)
	}
	r1, _, _, _ := a1.snapshot()
	r2, _, _, _ := a2.snapshot()
	if r1 != 20 || r2 != 20 {
		t.Fatalf("requests per URL: %d and %d, want 20 each", r1, r2)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunReplaysFiles(t *testing.T) {
	t.Parallel()
	event := func(topic, id string) string {
		return fmt.Sprintf(`{"topic":%q,"event_id":%q,"timestamp":"2025-03-01T10:00:00Z","source":"file","payload":{"n":1}}`, topic, id)
	}
	files := map[string]string{
		"events.ndjson": strings.Join([]string{event("a", "1"), event("a", "2"), event("b", "1"), "", event("a", "1"), event("c", "9")}, "\n") + "\n",
		"events.json":   "  [\n" + strings.Join([]string{event("a", "1"), event("a", "2"), event("b", "1"), event("a", "1"), event("c", "9")}, ",\n") + "\n]\n",
	}
	for name, content := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			agg, srv := newTestAggregator(t, nil)
			cfg := testConfig(srv.URL)
			cfg.File, cfg.Events, cfg.Batch = writeFile(t, name, content), 0, 2
			cfg.Verify = true
			s, err := Run(testContext(t), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Sent != 5 || s.Distinct != 4 || s.Duplicates != 1 || s.Requests != 3 || s.Seed != 0 {
				t.Fatalf("summary %+v; want 5 sent, 4 distinct, 1 duplicate in 3 requests", s)
			}
			if _, received, unique, _ := agg.snapshot(); received != 5 || unique != 4 {
				t.Fatalf("aggregator counted %d received, %d unique", received, unique)
			}
		})
	}
}

func TestRunReplayLimitAndBadFile(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, nil)
	cfg := testConfig(srv.URL)
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"topic":"t","event_id":"%d","timestamp":"2025-03-01T10:00:00Z","source":"f","payload":{}}`, i))
	}
	cfg.File, cfg.Events = writeFile(t, "ten.ndjson", strings.Join(lines, "\n")), 4
	if s, err := Run(testContext(t), cfg, nil); err != nil || s.Sent != 4 {
		t.Fatalf("replaying 4 of 10: err %v, sent %d", err, s.Sent)
	}

	cfg.File, cfg.Events = writeFile(t, "bad.ndjson", lines[0]+"\n{not json\n"), 0
	s, err := Run(testContext(t), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "event 2") || s.Sent != 1 {
		t.Fatalf("a broken second line: err %v, sent %d; want an error naming event 2 after sending the first", err, s.Sent)
	}
}

func TestRunVerifyWaitsForAQueuedConsumer(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, func(a *testAggregator) { a.queued = true })
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Duplicates, cfg.Batch = 300, 0.5, 30
	cfg.Verify = true
	s, err := Run(testContext(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Queued != 10 || s.Committed != 0 || s.Verify == nil || !s.Verify.OK || s.Verify.Got.UniqueProcessed != 150 {
		t.Fatalf("summary %+v, verify %+v", s, s.Verify)
	}

	// The same seed again: all duplicates. A 202 does not say which events were new, so
	// unique_processed may grow by up to the distinct events, once the consumer has drained.
	s, err = Run(testContext(t), cfg, nil)
	if err != nil || s.Verify == nil || !s.Verify.OK || !s.Verify.UniqueAtMost || s.Verify.Got != (Growth{Received: 300, UniqueProcessed: 0}) {
		t.Fatalf("the same seed again: err %v, verify %+v", err, s.Verify)
	}
	// A random seed: new ids, so exactly the distinct events are new.
	cfg.Seed = 0
	s, err = Run(testContext(t), cfg, nil)
	if err != nil || s.Verify == nil || !s.Verify.OK || s.Verify.UniqueAtMost || s.Verify.Got.UniqueProcessed != 150 {
		t.Fatalf("a random seed: err %v, verify %+v", err, s.Verify)
	}
}

func TestRunVerifyFailsOnWrongCounts(t *testing.T) {
	t.Parallel()
	for name, configure := range map[string]func(*testAggregator){
		"received overcounted": func(a *testAggregator) { a.skew = 1 },
		"consumer too slow": func(a *testAggregator) {
			a.queued = true
			a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
				// Answers 202 without queueing anything: the events never get committed.
				writeJSON(w, http.StatusAccepted, map[string]any{"received": 1, "queued": 1})
				return true
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, srv := newTestAggregator(t, configure)
			cfg := testConfig(srv.URL)
			cfg.Events, cfg.Batch = 50, 10
			cfg.Verify, cfg.VerifyTimeout = true, 300*time.Millisecond
			s, err := Run(testContext(t), cfg, nil)
			var ve *VerifyError
			if !errors.As(err, &ve) || s.Verify == nil || s.Verify.OK {
				t.Fatalf("err = %v, verify %+v; want a VerifyError", err, s.Verify)
			}
		})
	}
}

func TestRunStopsCleanlyWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	_, srv := newTestAggregator(t, func(a *testAggregator) {
		a.intercept = func(n int, w http.ResponseWriter, r *http.Request) bool {
			if n == 5 {
				cancel() // as Ctrl-C would, in the middle of a request
			}
			return false
		}
	})
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Batch, cfg.Concurrency = 100_000, 10, 2
	s, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Interrupted || s.Sent == 0 || s.Sent >= 100_000 || s.Sent != s.Generated || s.Failures != 0 {
		t.Fatalf("summary %+v; want an interrupted run whose requests in flight all finished", s)
	}
}

func TestRunStopsAfterDuration(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Duration, cfg.Rate, cfg.Batch, cfg.Duplicates = 0, 200*time.Millisecond, 500, 10, 0.2
	cfg.Verify = true
	s, err := Run(testContext(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The rate bounds the count from above: the first batch goes at once, then one per 20 ms.
	if s.Interrupted || s.Sent == 0 || s.Sent > 200 || s.Sent != s.Generated {
		t.Fatalf("summary %+v", s)
	}
}

func TestRunDrawsProgress(t *testing.T) {
	t.Parallel()
	_, srv := newTestAggregator(t, nil)
	cfg := testConfig(srv.URL)
	cfg.Events, cfg.Batch = 200, 20
	var progress testenv.Buffer
	if _, err := Run(testContext(t), cfg, &progress); err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	if !strings.HasPrefix(out, "\r[") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "100% 200/200") {
		t.Fatalf("progress output %q", out)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Batch, cfg.Duplicates = 0, 1
	_, err := Run(testContext(t), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "batch") || !strings.Contains(err.Error(), "duplicates") || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("err = %v; want every problem named", err)
	}
}

func TestLatencyPercentiles(t *testing.T) {
	t.Parallel()
	var samples []time.Duration
	for i := 100; i >= 1; i-- {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	l := latencyOf(samples)
	if l.P50 != 50*time.Millisecond || l.P95 != 95*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Fatalf("latency = %+v", l)
	}
	if l.P95Ms != 95 {
		t.Fatalf("P95Ms = %v", l.P95Ms)
	}
	if (latencyOf(nil) != Latency{}) {
		t.Fatal("no samples should give zero latencies")
	}
}

func TestSummaryText(t *testing.T) {
	t.Parallel()
	s := Summary{Seed: 5, Source: "generator", URLs: 1, Generated: 10, Sent: 10, Distinct: 7, Duplicates: 3,
		Verify: &Verification{Want: Growth{10, 7}, Got: Growth{10, 7}, OK: true}}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seed 5", "10 (7 distinct, 3 duplicates)", "verify      ok"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary text lacks %q:\n%s", want, b.String())
		}
	}
}
