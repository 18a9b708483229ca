package subscriber_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/storetest"
	"github.com/uts-events/uts/subscriber"
)

// fastRetry keeps real waits out of the tests.
var fastRetry = subscriber.RetryPolicy{MaxAttempts: 20, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func config(url, name, out string) subscriber.Config {
	cfg := subscriber.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.Subscription = name
	cfg.Out = out
	cfg.ExitIdle = true
	cfg.Retry = fastRetry
	return cfg
}

func follow(t *testing.T, cfg subscriber.Config) subscriber.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	summary, err := subscriber.Follow(ctx, cfg, io.Discard, nil)
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	return summary
}

func readLines(t *testing.T, path string) []line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseLines(t, data)
}

// wantIDs is the ids fill gave events from..to-1 over topics, in the order stored.
func wantIDs(prefix string, from, to int, topics ...string) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, topics[i%len(topics)]+"/"+prefix+strconv.Itoa(i))
	}
	return out
}

// TestFollowWritesEveryEventOnceAndResumes drains a subscription in pages smaller than the
// feed and commits part-way, then runs again after more events are stored: the file holds
// every event once, in feed order, and the second run starts where the first committed.
func TestFollowWritesEveryEventOnceAndResumes(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	url := serve(t, s, nil, "")
	fill(t, s, "a", 2500, "orders", "payments")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	cfg := config(url, "resume", out)
	cfg.Limit, cfg.CommitEvery = 1000, 700

	first := follow(t, cfg)
	if first.Events != 2500 || !first.Resumed.IsZero() {
		t.Fatalf("first run: %+v; want 2500 events from the start", first)
	}
	lines := readLines(t, out)
	if got, want := ids(lines), wantIDs("a", 0, 2500, "orders", "payments"); !slices.Equal(got, want) {
		t.Fatalf("first run wrote %d lines, %v…; want %d in feed order", len(got), got[:min(3, len(got))], len(want))
	}
	if lines[len(lines)-1].Cursor != first.Cursor.String() {
		t.Fatalf("committed %s; want the last line's cursor %s", first.Cursor, lines[len(lines)-1].Cursor)
	}

	fill(t, s, "b", 600, "orders", "payments")
	second := follow(t, cfg)
	if second.Events != 600 || second.Resumed != first.Cursor {
		t.Fatalf("second run: %+v; want 600 events resumed from %s", second, first.Cursor)
	}
	got := ids(readLines(t, out))
	want := append(wantIDs("a", 0, 2500, "orders", "payments"), wantIDs("b", 0, 600, "orders", "payments")...)
	if !slices.Equal(got, want) {
		t.Fatalf("after the second run the file has %d lines; want %d, each event once in feed order", len(got), len(want))
	}
}

// TestFollowOnlyItsTopics follows two of three topics.
func TestFollowOnlyItsTopics(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	url := serve(t, s, nil, "")
	fill(t, s, "e", 300, "orders", "payments", "refunds")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	cfg := config(url, "two-topics", out)
	cfg.Topics = []string{"refunds", "orders"}
	follow(t, cfg)
	for _, l := range readLines(t, out) {
		if l.Topic == "payments" {
			t.Fatalf("wrote %+v; the subscription follows orders and refunds only", l)
		}
	}
	if n := len(readLines(t, out)); n != 200 {
		t.Fatalf("wrote %d lines; want the 200 orders and refunds", n)
	}
}

// TestCrashBeforeCommitRepeatsNeverLoses stops the first run between writing its first page
// and committing it (the commit is refused, a 4xx that stops it), as a crash would: the second run writes those
// events again, and the file, with repeats dropped by cursor, is every event once.
func TestCrashBeforeCommitRepeatsNeverLoses(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	var refuse atomic.Bool
	refuse.Store(true)
	url := serve(t, s, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuse.Load() && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/commit") {
				http.Error(w, `{"error":"refused by the test"}`, http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, "")
	fill(t, s, "c", 1200, "orders")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	cfg := config(url, "crash", out)
	cfg.Limit = 500

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := subscriber.Follow(ctx, cfg, io.Discard, nil)
	var se *subscriber.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusForbidden || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("Follow with commits refused: %v; want the 403 and its message", err)
	}
	written := len(readLines(t, out))
	if written != 500 {
		t.Fatalf("%d lines written before the refused commit; want the first page, durable before committing", written)
	}

	refuse.Store(false)
	summary := follow(t, cfg)
	if !summary.Resumed.IsZero() {
		t.Fatalf("resumed from %s; nothing was committed", summary.Resumed)
	}
	lines := readLines(t, out)
	byCursor := map[string]string{}
	for _, l := range lines {
		id := l.Topic + "/" + l.EventID
		if prev, ok := byCursor[l.Cursor]; ok && prev != id {
			t.Fatalf("cursor %s carries %s and %s", l.Cursor, prev, id)
		}
		byCursor[l.Cursor] = id
	}
	if len(byCursor) != 1200 || len(lines) != 1200+written {
		t.Fatalf("%d lines, %d distinct cursors; want every event once plus the %d repeats", len(lines), len(byCursor), written)
	}
}

// TestRetriesThroughOutagesAndFailsOver drains through 503s with Retry-After, a dropped
// connection, and a first replica that is down.
func TestRetriesThroughOutagesAndFailsOver(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	var reads atomic.Int64
	url := serve(t, s, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/events") {
				switch reads.Add(1) {
				case 1, 3:
					w.Header().Set("Retry-After", "0")
					http.Error(w, `{"error":"the store timed out"}`, http.StatusServiceUnavailable)
					return
				case 2:
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close() // no answer at all: a network error
					}
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}, "")
	down := closedURL(t)
	fill(t, s, "r", 900, "orders")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	cfg := config(url, "retries", out)
	cfg.URLs = []string{down, url}
	cfg.Limit = 400
	summary := follow(t, cfg)
	if summary.Events != 900 || len(readLines(t, out)) != 900 {
		t.Fatalf("%+v; want all 900 events once", summary)
	}
	if summary.Retries < 3 {
		t.Fatalf("%d retries; want at least the two 503s and the dropped connection", summary.Retries)
	}
}

// TestStopsOnAClientError stops at once, with the aggregator's words, on a 401.
func TestStopsOnAClientError(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	url := serve(t, s, nil, "r3ad")
	cfg := config(url, "auth", filepath.Join(t.TempDir(), "out.ndjson"))
	cfg.Token = "wrong"
	cfg.Retry.MaxAttempts = 0 // for ever: only the status may stop it
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := subscriber.Follow(ctx, cfg, io.Discard, nil)
	var se *subscriber.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("Follow with a wrong token: %v; want a 401 at once", err)
	}
	cfg.Token = "r3ad"
	follow(t, cfg)
}

// TestCutsAPartialLineLeftByACrash starts on a file whose last line was cut short.
func TestCutsAPartialLineLeftByACrash(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	url := serve(t, s, nil, "")
	fill(t, s, "p", 10, "orders")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	if err := os.WriteFile(out, []byte(`{"topic":"x","event_id":"whole","cursor":"1"}`+"\n"+`{"topic":"x","eve`), 0o644); err != nil {
		t.Fatal(err)
	}
	follow(t, config(url, "partial", out))
	lines := readLines(t, out) // fails on a broken line
	if len(lines) != 11 || lines[0].EventID != "whole" {
		t.Fatalf("%d lines, first %+v; want the whole line kept, the partial one cut, 10 events after", len(lines), lines[0])
	}
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestFollowReportsEventsLostToRetention: a subscription that falls behind retention goes on
// from the oldest event still held and counts the gap once, however many pages it spans.
func TestFollowReportsEventsLostToRetention(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	url := serve(t, s, nil, "")
	out := filepath.Join(t.TempDir(), "out.ndjson")
	cfg := config(url, "behind", out)
	cfg.Limit, cfg.CommitEvery = 100, 100
	cfg.Topics = []string{"orders"}
	fill(t, s, "a", 300, "orders")
	if first := follow(t, cfg); first.Events != 300 || first.Gaps != 0 {
		t.Fatalf("first run: %+v; want 300 events and no gap", first)
	}

	fill(t, s, "b", 200, "orders")
	// Everything so far expires.
	storetest.ExpireAll(t, s, uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), 1000)
	fill(t, s, "c", 250, "orders")
	second := follow(t, cfg)
	if second.Events != 250 || second.Gaps != 1 {
		t.Fatalf("second run: %+v; want the 250 events still held and one gap", second)
	}
	if third := follow(t, cfg); third.Events != 0 || third.Gaps != 0 {
		t.Fatalf("third run: %+v; past the gap there is nothing to report", third)
	}
}
