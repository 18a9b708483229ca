package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/flagenv"
	"github.com/uts-events/uts/publisher"
)

// countingAggregator is the least of the aggregator's API the command needs: /publish
// stores each (topic, event_id) once, /stats reports the counts.
type countingAggregator struct {
	mu       sync.Mutex
	requests int
	received int
	keys     map[string]bool
	// forget makes /publish answer 200 and count nothing, as a broken aggregator would.
	forget bool
}

func newCountingAggregator(t *testing.T) (*countingAggregator, string) {
	t.Helper()
	a := &countingAggregator{keys: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		var events []struct {
			Topic   string `json:"topic"`
			EventID string `json:"event_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			http.Error(w, `{"error":"want a JSON array"}`, http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.requests++
		if a.forget {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]int{"received": len(events), "unique": len(events)})
			return
		}
		unique := 0
		for _, e := range events {
			if k := e.Topic + "\x00" + e.EventID; !a.keys[k] {
				a.keys[k] = true
				unique++
			}
		}
		a.received += len(events)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int{"received": len(events), "unique": unique, "duplicates": len(events) - unique})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"received": a.received, "unique_processed": len(a.keys),
			"duplicate_dropped": a.received - len(a.keys), "topics": map[string]int{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func (a *countingAggregator) counts() (requests, received, unique int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests, a.received, len(a.keys)
}

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func runCommand(t *testing.T, args []string, vars map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, env(vars), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestRunPrintsJSONSummaryAndVerifies(t *testing.T) {
	t.Parallel()
	agg, url := newCountingAggregator(t)
	stdout, stderr, err := runCommand(t, []string{"-url", url, "-events", "500", "-duplicates", "0.3", "-topics", "4",
		"-batch", "25", "-concurrency", "3", "-seed", "17", "-json", "-verify", "-retry-base", "1ms", "-retry-max", "10ms"}, nil)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr)
	}
	var s publisher.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("stdout is not one JSON summary: %v\n%s", err, stdout)
	}
	if s.Seed != 17 || s.Sent != 500 || s.Distinct != 350 || s.Duplicates != 150 || s.Requests != 20 || s.Verify == nil || !s.Verify.OK {
		t.Fatalf("summary %s", stdout)
	}
	if requests, received, unique := agg.counts(); requests != 20 || received != 500 || unique != 350 {
		t.Fatalf("aggregator: %d requests, %d received, %d unique", requests, received, unique)
	}
	if strings.Contains(stderr, "\r") {
		t.Fatalf("progress drawn on a non-terminal: %q", stderr)
	}
}

func TestRunPrintsTextSummaryAndARandomSeed(t *testing.T) {
	t.Parallel()
	_, url := newCountingAggregator(t)
	stdout, stderr, err := runCommand(t, []string{"-url", url, "-events", "30", "-token", "hunter2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout+stderr, "hunter2") {
		t.Fatalf("the token leaked into the output:\n%s\n%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "seed=") || !strings.Contains(stdout, "publisher done: 30 events") || !strings.Contains(stdout, ", seed ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func TestRunReadsEnvironmentTwins(t *testing.T) {
	t.Parallel()
	a1, url1 := newCountingAggregator(t)
	a2, url2 := newCountingAggregator(t)
	vars := map[string]string{"UTS_URL": url1 + "," + url2, "UTS_EVENTS": "100", "UTS_BATCH": "10", "UTS_SEED": "3", "UTS_JSON": "true"}

	stdout, _, err := runCommand(t, nil, vars)
	if err != nil {
		t.Fatal(err)
	}
	var s publisher.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s.Sent != 100 || s.URLs != 2 || s.Seed != 3 {
		t.Fatalf("summary %s (%v)", stdout, err)
	}
	r1, _, _ := a1.counts()
	r2, _, _ := a2.counts()
	if r1 != 5 || r2 != 5 {
		t.Fatalf("requests per URL: %d and %d, want 5 each", r1, r2)
	}

	// A flag wins over its twin.
	stdout, _, err = runCommand(t, []string{"-events", "20", "-url", url1}, vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s.Sent != 20 || s.URLs != 1 {
		t.Fatalf("summary %s (%v)", stdout, err)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args    []string
		vars    map[string]string
		wantErr string
	}{
		{args: []string{"-nope"}, wantErr: "flag provided but not defined"},
		{args: []string{"-duplicates", "1"}, wantErr: "duplicates"},
		{args: []string{"-batch", "0"}, wantErr: "batch"},
		{args: []string{"-events", "0"}, wantErr: "duration"},
		{args: []string{"stray"}, wantErr: "unexpected arguments"},
		{vars: map[string]string{"UTS_EVENTS": "many"}, wantErr: "UTS_EVENTS"},
		{args: []string{"-url", "localhost:8080"}, wantErr: "http(s)://"},
	}
	for _, c := range cases {
		_, _, err := runCommand(t, c.args, c.vars)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("run(%q, %v) = %v; want an error about %q", c.args, c.vars, err, c.wantErr)
		}
	}
}

// TestRunHelpIsNotAnError: -h prints every flag with the variable that sets it, and is a
// success (main exits 0 on a nil error).
func TestRunHelpIsNotAnError(t *testing.T) {
	t.Parallel()
	_, stderr, err := runCommand(t, []string{"-h"}, nil)
	if err != nil || !strings.Contains(stderr, "-duplicates") {
		t.Fatalf("err %v, usage %q", err, stderr)
	}
	for _, flagName := range []string{"url", "events", "duplicates", "verify", "give-up-after", "retry-base", "json"} {
		want := "  -" + flagName
		i := strings.Index(stderr, want)
		if i < 0 {
			t.Errorf("-h does not list -%s", flagName)
			continue
		}
		entry, _, _ := strings.Cut(stderr[i+len(want):], "\n  -")
		if !strings.Contains(entry, "variable: "+flagenv.Variable(flagName)) {
			t.Errorf("-h does not name %s for -%s:%s", flagenv.Variable(flagName), flagName, entry)
		}
	}
}

// TestRunGivesUpOnADeadAggregator: nothing listens at -url; the run stops after
// -give-up-after with a non-nil error (exit 1) that says so, and prints its summary.
func TestRunGivesUpOnADeadAggregator(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	stdout, _, err := runCommand(t, []string{"-url", url, "-events", "100", "-batch", "10", "-retries", "1000",
		"-retry-base", "1ms", "-retry-max", "10ms"}, map[string]string{"UTS_GIVE_UP_AFTER": "300ms"})
	if err == nil || !strings.Contains(err.Error(), "gave up: no request succeeded") || !strings.Contains(err.Error(), "-give-up-after 300ms") {
		t.Fatalf("err %v; want a give-up naming -give-up-after", err)
	}
	if !strings.HasPrefix(stdout, "publisher gave up: 0 events") {
		t.Errorf("summary:\n%s", stdout)
	}
}

// TestRunVerifiesEveryRunWithoutASeed: the README's quick start (no -seed) passes -verify
// however often it is run against the same aggregator: each run makes new ids.
func TestRunVerifiesEveryRunWithoutASeed(t *testing.T) {
	t.Parallel()
	agg, url := newCountingAggregator(t)
	args := []string{"-url", url, "-events", "200", "-duplicates", "0.3", "-batch", "20", "-verify"}
	for run := range 3 {
		if stdout, _, err := runCommand(t, args, nil); err != nil || !strings.Contains(stdout, "verify      ok: received +200 (want +200), unique_processed +140 (want +140)") {
			t.Fatalf("run %d: err %v, stdout:\n%s", run, err, stdout)
		}
	}
	if _, received, unique := agg.counts(); received != 600 || unique != 420 {
		t.Fatalf("aggregator: %d received, %d unique; want 600, 420", received, unique)
	}
}

// TestRunVerifiesARepeatedSeed: the same -seed again sends the same events, all of them
// duplicates now; -verify then expects what the aggregator answered (no new event), and
// still fails when the counters do not move as answered.
func TestRunVerifiesARepeatedSeed(t *testing.T) {
	t.Parallel()
	agg, url := newCountingAggregator(t)
	args := []string{"-url", url, "-events", "40", "-seed", "9", "-verify", "-verify-timeout", "100ms"}
	if _, _, err := runCommand(t, args, nil); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCommand(t, args, nil)
	if err != nil || !strings.Contains(stdout, "verify      ok: received +40 (want +40), unique_processed +0 (want +0)") {
		t.Fatalf("the same seed again: err %v, stdout:\n%s", err, stdout)
	}
	if _, received, unique := agg.counts(); received != 80 || unique != 40 {
		t.Fatalf("aggregator: %d received, %d unique", received, unique)
	}

	agg.mu.Lock()
	agg.forget = true
	agg.mu.Unlock()
	stdout, _, err = runCommand(t, []string{"-url", url, "-events", "40", "-verify"}, nil)
	if err == nil || !strings.Contains(err.Error(), "unique_processed") || !strings.Contains(stdout, "verify      FAILED") {
		t.Fatalf("an aggregator that counts nothing: err %v, stdout:\n%s", err, stdout)
	}
}
