package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// retentionStats is what /stats says about retention.
type retentionStats struct {
	UniqueProcessed int64 `json:"unique_processed"`
	Stored          int64 `json:"stored"`
	Expired         int64 `json:"expired"`
}

func publishBatch(t *testing.T, url, topic string, n int) publishAnswer {
	t.Helper()
	events := make([]testEvent, n)
	for i := range events {
		events[i] = newTestEvent(topic, fmt.Sprintf("e%d", i))
	}
	a, err := postEvents(t.Context(), http.DefaultClient, url, events)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("publish: %+v, %v; want 200", a, err)
	}
	return a
}

// TestRetentionRunsInTheBackground: with -retention the aggregator expires events on its
// own, keeps their keys, reports it in /stats and /metrics, and the counts survive a restart
// without retention.
func TestRetentionRunsInTheBackground(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "uts.db")
	url, stop := startRun(t, "-db", db, "-retention", "short=1s", "-expire-interval", "100ms")
	publishBatch(t, url, "short", 5)
	publishBatch(t, url, "long", 3)

	var s retentionStats
	deadline := time.Now().Add(20 * time.Second)
	for getJSON(t, url+"/stats", &s); s.Expired < 5; getJSON(t, url+"/stats", &s) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %+v, want 5 expired", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s != (retentionStats{UniqueProcessed: 8, Stored: 3, Expired: 5}) {
		t.Fatalf("stats %+v, want 8 unique, 3 stored (long), 5 expired (short)", s)
	}
	if again := publishBatch(t, url, "short", 5); again.Unique != 0 || again.Duplicates != 5 {
		t.Fatalf("republishing expired events: %+v, want 5 duplicates", again)
	}

	metrics := scrape(t, url)
	for name, ok := range map[string]func(float64) bool{
		"uts_store_expired_events_total":        func(v float64) bool { return v == 5 },
		"uts_store_events":                      func(v float64) bool { return v == 3 },
		"uts_store_disk_bytes":                  func(v float64) bool { return v > 0 },
		`uts_expiry_runs_total{result="ok"}`:    func(v float64) bool { return v > 0 },
		`uts_expiry_runs_total{result="error"}`: func(v float64) bool { return v == 0 },
	} {
		v, found := metrics[name]
		if !found || !ok(v) {
			t.Errorf("%s = %v (found %v)", name, v, found)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}

	url, stop = startRun(t, "-db", db)
	defer stop()
	getJSON(t, url+"/stats", &s)
	if s != (retentionStats{UniqueProcessed: 8, Stored: 3, Expired: 5}) {
		t.Fatalf("after a restart: %+v", s)
	}
}

var sampleLine = regexp.MustCompile(`^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$`)

// scrape reads /metrics into name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for line := range bytes.Lines(body) {
		if m := sampleLine.FindSubmatch(bytes.TrimSpace(line)); m != nil {
			v, err := strconv.ParseFloat(string(m[2]), 64)
			if err == nil {
				out[string(m[1])] = v
			}
		}
	}
	return out
}
