package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExportReplaysIntoAnIdenticalAggregator is the backup story: export everything from
// one aggregator as NDJSON, replay the file into an empty one with the real publisher, and
// the two hold the same events in the same order; replay it again and all of it is dropped
// as duplicates.
//
// That the export streams (memory flat in the number of events) is not asserted here: a
// client cannot tell a streamed body from a buffered one without timing it. The http
// package's export reads the store a chunk at a time and flushes after each.
func TestExportReplaysIntoAnIdenticalAggregator(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs both binaries")
	}
	t.Parallel()
	aggregatorBin, publisherBin := binaries(t)
	dir := t.TempDir()
	a := startAggregator(t, aggregatorBin, "-db", "sqlite:"+filepath.Join(dir, "a", "uts.db"))
	b := startAggregator(t, aggregatorBin, "-db", "sqlite:"+filepath.Join(dir, "b", "uts.db"))

	// 4,000 events, 30% of them re-sent, over 4 topics: 2,800 unique.
	runPublisher(t, publisherBin, "-url", a.URL, "-events", "4000", "-duplicates", "0.3", "-topics", "4",
		"-batch", "100", "-concurrency", "4", "-seed", "11")
	before := getStats(t, a.URL)
	if before.UniqueProcessed != 2800 || before.DuplicateDropped != 1200 || len(before.Topics) != 4 {
		t.Fatalf("aggregator A stats %+v, want 2800 unique, 1200 duplicates, 4 topics", before)
	}

	file := filepath.Join(dir, "events.ndjson")
	if lines := exportTo(t, a.URL, file); lines != 2800 {
		t.Fatalf("export wrote %d lines, want 2800", lines)
	}
	// One request at a time, so B processes the file in its order, which is A's.
	runPublisher(t, publisherBin, "-file", file, "-url", b.URL, "-concurrency", "1")

	want, got := storedEvents(t, a.URL), storedEvents(t, b.URL)
	if len(got) != len(want) {
		t.Fatalf("B holds %d events, A %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: B has %+v, A has %+v", i, got[i], want[i])
		}
	}
	first := getStats(t, b.URL)
	if first.Received != 2800 || first.UniqueProcessed != 2800 || first.DuplicateDropped != 0 {
		t.Fatalf("B after one replay %+v, want 2800 received, all unique", first)
	}
	for topic, n := range before.Topics {
		if first.Topics[topic] != n {
			t.Errorf("topic %s: B has %d unique, A %d", topic, first.Topics[topic], n)
		}
	}

	runPublisher(t, publisherBin, "-file", file, "-url", b.URL)
	again := getStats(t, b.URL)
	if again.UniqueProcessed != first.UniqueProcessed || again.DuplicateDropped != first.DuplicateDropped+2800 ||
		again.Received != first.Received+2800 {
		t.Fatalf("B after a second replay %+v, want unique unchanged (%d) and 2800 more duplicates", again, first.UniqueProcessed)
	}
	if after := getStats(t, a.URL); after.Received != before.Received {
		t.Errorf("exporting changed A's counters: %+v, then %+v", before, after)
	}
	a.Stop(t)
	b.Stop(t)
}

func runPublisher(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("publisher %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// exportTo saves GET /events as NDJSON to path and returns its line count.
func exportTo(t *testing.T, base, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatalf("export: %v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	lines := 0
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 2<<20)
	for scanner.Scan() {
		if !json.Valid(scanner.Bytes()) {
			t.Fatalf("export line %d is not JSON: %q", lines+1, scanner.Bytes())
		}
		lines++
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// storedEvent is what an aggregator answers for an event, less processed_at, which is the
// answering aggregator's own clock.
type storedEvent struct {
	Topic, EventID, Timestamp, Source, Payload string
}

// storedEvents walks every page of /events in processing order.
func storedEvents(t *testing.T, base string) []storedEvent {
	t.Helper()
	var all []storedEvent
	next := base + "/events?limit=1000"
	for pages := 0; next != ""; pages++ {
		if pages == 1000 {
			t.Fatalf("%s/events did not end after 1000 pages", base)
		}
		var page []struct {
			Topic     string          `json:"topic"`
			EventID   string          `json:"event_id"`
			Timestamp string          `json:"timestamp"`
			Source    string          `json:"source"`
			Payload   json.RawMessage `json:"payload"`
		}
		h := getJSON(t, next, &page)
		for _, e := range page {
			var payload bytes.Buffer
			if err := json.Compact(&payload, e.Payload); err != nil {
				t.Fatalf("payload of %s/%s: %v", e.Topic, e.EventID, err)
			}
			all = append(all, storedEvent{e.Topic, e.EventID, e.Timestamp, e.Source, payload.String()})
		}
		next = ""
		if link := h.Get("Link"); link != "" {
			start, end := strings.Index(link, "<"), strings.Index(link, ">")
			if start >= 0 && end > start {
				next = base + link[start+1:end]
			}
		}
	}
	return all
}
