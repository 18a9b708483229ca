package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

// e2eEvents is how many events TestSubscriberSurvivesKills publishes: UTS_E2E_EVENTS, or a
// size that keeps the test within seconds on a 2-core CI machine. The full 100,000 runs the
// same way with UTS_E2E_EVENTS=100000 (docs/benchmarks.md records a run).
func e2eEvents(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("UTS_E2E_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("UTS_E2E_EVENTS=%q: want a number of at least 1000", v)
		}
		return n
	}
	return 30000
}

// TestSubscriberSurvivesKills runs three aggregators on one PostgreSQL schema with the Redis
// broker while the publisher sends events with 30% duplicates to all three. Meanwhile the
// subscriber binary follows a subscription over the three, appending to one file, and is
// killed with SIGKILL twice, each time restarted on the same file. At the end the file, with
// repeats dropped by cursor, is exactly the stored events: none missing, none extra, each
// with its stored content, and every cursor naming one event.
func TestSubscriberSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: builds and runs the binaries")
	}
	t.Parallel()
	db := testenv.PostgresSchema(t)
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	b := binaries(t)
	began := time.Now()
	events := e2eEvents(t)
	distinct := events - events*3/10

	urls := make([]string, 3)
	for i := range urls {
		urls[i], _ = startAggregator(t, b.aggregator, "-db", db, "-broker", redisURL, "-redis-prefix", prefix,
			"-consumer-name", fmt.Sprintf("replica-%d", i), "-workers", "2")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var pubOut, pubErr bytes.Buffer
	pubArgs := []string{"-events", strconv.Itoa(events), "-duplicates", "0.3", "-topics", "5", "-batch", "100",
		"-concurrency", "6", "-seed", "5", "-json"}
	for _, u := range urls {
		pubArgs = append(pubArgs, "-url", u)
	}
	publisher := exec.CommandContext(ctx, b.publisher, pubArgs...)
	publisher.Stdout, publisher.Stderr = &pubOut, &pubErr
	if err := publisher.Start(); err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- publisher.Wait() }()

	// Small pages mean many write-then-commit steps: a kill between the two leaves written,
	// uncommitted lines, which the restarted subscriber writes again.
	out := filepath.Join(t.TempDir(), "events.ndjson")
	subArgs := []string{"-url", strings.Join(urls, ","), "-subscription", "e2e", "-from", "earliest",
		"-out", out, "-limit", "1000", "-commit-every", "1000", "-wait", "2s"}
	sub := startProcess(t, b.subscriber, subArgs...)
	for kill := 1; kill <= 2; kill++ {
		want := kill * distinct / 3
		testenv.Eventually(t, fmt.Sprintf("%d lines before kill %d", want, kill), time.Minute, 20*time.Millisecond, func() error {
			if n := countLines(t, out); n < want {
				return fmt.Errorf("%d lines", n)
			}
			select {
			case <-sub.done:
				return fmt.Errorf("subscriber exited:\n%s", sub.logs)
			default:
				return nil
			}
		})
		sub.Kill()
		t.Logf("%v: kill %d at %d lines", time.Since(began).Round(time.Millisecond), kill, countLines(t, out))
		sub = startProcess(t, b.subscriber, subArgs...)
	}

	err := <-published
	t.Logf("%v: publisher done", time.Since(began).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("publisher: %v\n%s\n%s", err, pubOut.String(), pubErr.String())
	}
	var summary struct {
		Sent, Distinct int
		FailedEvents   int `json:"failed_events"`
	}
	if err := json.Unmarshal(pubOut.Bytes(), &summary); err != nil {
		t.Fatalf("publisher summary %q: %v", pubOut.String(), err)
	}
	if summary.Sent != events || summary.Distinct != distinct || summary.FailedEvents != 0 {
		t.Fatalf("publisher: %+v; want %d sent, %d distinct", summary, events, distinct)
	}
	testenv.Eventually(t, "the replicas to store every event", time.Minute, 100*time.Millisecond, func() error {
		var s struct {
			Received   int64 `json:"received"`
			Unique     int64 `json:"unique_processed"`
			QueueDepth int64 `json:"queue_depth"`
		}
		if err := getJSON(ctx, urls[0]+"/stats", &s); err != nil {
			return err
		}
		if s.QueueDepth != 0 || s.Unique != int64(distinct) {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	testenv.Eventually(t, "the subscriber to commit every event", time.Minute, 100*time.Millisecond, func() error {
		var s struct {
			Lag int64 `json:"lag"`
		}
		if err := getJSON(ctx, urls[1]+"/subscriptions/e2e", &s); err != nil {
			return err
		}
		if s.Lag != 0 {
			return fmt.Errorf("lag %d", s.Lag)
		}
		return nil
	})
	t.Logf("%v: subscriber caught up", time.Since(began).Round(time.Millisecond))
	// The last subscriber may have nothing left to do, and on a loaded machine may not have
	// reached main's signal handler yet: a SIGINT before it kills the process like a SIGKILL
	// (exit -1), which would say nothing about the clean stop tested here.
	testenv.Eventually(t, "the last subscriber to start", time.Minute, 20*time.Millisecond, func() error {
		if !strings.Contains(sub.logs.String(), "subscriber starting") {
			return fmt.Errorf("logs so far:\n%s", sub.logs)
		}
		return nil
	})
	if code := sub.Stop(t); code != 0 {
		t.Fatalf("subscriber exited %d at SIGINT:\n%s", code, sub.logs)
	}

	written, lines := readOutput(t, out)
	stored := exportEvents(t, ctx, urls[2])
	if len(stored) != distinct {
		t.Errorf("%d events stored; want %d", len(stored), distinct)
	}
	if len(written) != len(stored) {
		t.Errorf("%d distinct cursors written; want %d, one per stored event", len(written), len(stored))
	}
	missing := 0
	for key, want := range stored {
		got, ok := written[key]
		switch {
		case !ok:
			missing++
		case got != want:
			t.Errorf("%v written as %s; stored as %s", key, got, want)
		}
	}
	if missing > 0 {
		t.Errorf("%d stored events never written", missing)
	}
	t.Logf("%d events sent, %d stored, %d lines written (%d repeats after 2 kills)", events, len(stored), lines, lines-len(written))
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte{'\n'})
}

type eventKey struct{ Topic, EventID string }

// readOutput reads the subscriber's file, drops repeats by cursor, and returns each event's
// content (without its cursor) by key. A cursor written twice must carry the same event
// both times, and no key may appear under two cursors.
func readOutput(t *testing.T, path string) (map[eventKey]string, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byCursor := map[string]string{}
	byKey := map[eventKey]string{}
	lines := 0
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 2<<20)
	for scanner.Scan() {
		lines++
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(scanner.Bytes(), &fields); err != nil {
			t.Fatalf("line %d %q: %v", lines, scanner.Text(), err)
		}
		var cursor string
		if err := json.Unmarshal(fields["cursor"], &cursor); err != nil || cursor == "" {
			t.Fatalf("line %d %q: no cursor", lines, scanner.Text())
		}
		delete(fields, "cursor")
		key, content := keyAndContent(t, fields)
		if prev, seen := byCursor[cursor]; seen {
			if prev != content {
				t.Fatalf("cursor %s written as %s and as %s", cursor, prev, content)
			}
			continue
		}
		byCursor[cursor] = content
		if _, dup := byKey[key]; dup {
			t.Fatalf("%v written under two cursors", key)
		}
		byKey[key] = content
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return byKey, lines
}

// exportEvents reads every stored event through the NDJSON export.
func exportEvents(t *testing.T, ctx context.Context, base string) map[eventKey]string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: status %d", resp.StatusCode)
	}
	stored := map[eventKey]string{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 2<<20)
	for scanner.Scan() {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(scanner.Bytes(), &fields); err != nil {
			t.Fatalf("export line %q: %v", scanner.Text(), err)
		}
		key, content := keyAndContent(t, fields)
		if _, dup := stored[key]; dup {
			t.Fatalf("%v exported twice", key)
		}
		stored[key] = content
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// keyAndContent returns an event's key and its fields in one canonical text, so that a line
// and an exported event compare equal when they hold the same values.
func keyAndContent(t *testing.T, fields map[string]json.RawMessage) (eventKey, string) {
	t.Helper()
	var key eventKey
	if json.Unmarshal(fields["topic"], &key.Topic) != nil || json.Unmarshal(fields["event_id"], &key.EventID) != nil {
		t.Fatalf("event %v has no topic or event_id", fields)
	}
	content, err := json.Marshal(fields) // map keys sorted
	if err != nil {
		t.Fatal(err)
	}
	return key, string(content)
}
