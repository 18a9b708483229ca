package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/uts-events/uts/internal/testenv"
)

// These helpers drive the aggregators the multi-process tests start on the shared test
// servers; internal/testenv gives each test its own schema and key prefix there.

// drainLimit bounds every wait for the consumers to catch up.
const drainLimit = 90 * time.Second

// pendingOf counts the entries the group "aggregators" has given to consumer and that it has
// not acknowledged; consumer "" counts them for every consumer.
func pendingOf(ctx context.Context, client *goredis.Client, prefix, consumer string) (int64, error) {
	p, err := client.XPending(ctx, prefix+"events", "aggregators").Result()
	if err != nil {
		return 0, err
	}
	if consumer == "" {
		return p.Count, nil
	}
	return p.Consumers[consumer], nil
}

// fullStats is /stats with everything the draining checks need.
type fullStats struct {
	Received           int64            `json:"received"`
	UniqueProcessed    int64            `json:"unique_processed"`
	DuplicateDropped   int64            `json:"duplicate_dropped"`
	DuplicateConflicts int64            `json:"duplicate_conflicts"`
	DeadLettered       int64            `json:"dead_lettered"`
	QueueDepth         int64            `json:"queue_depth"`
	Topics             map[string]int64 `json:"topics"`
}

func (s fullStats) addsUp() bool {
	return s.Received == s.UniqueProcessed+s.DuplicateDropped+s.DeadLettered
}

func (s fullStats) topicsSum() int64 {
	var n int64
	for _, u := range s.Topics {
		n += u
	}
	return n
}

func readStats(ctx context.Context, base string) (fullStats, error) {
	var s fullStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /stats: status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitDrained polls /stats of every aggregator until each has an empty queue and the
// counters add up, then returns the first one's stats. With Redis the queue is the shared
// stream, so depth 0 means no entry is waiting or pending with any consumer.
func waitDrained(t *testing.T, bases ...string) fullStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drainLimit)
	defer cancel()
	var last fullStats
	var lastErr error
	for {
		drained := true
		for i, base := range bases {
			s, err := readStats(ctx, base)
			if err != nil {
				lastErr, drained = err, false
				break
			}
			if i == 0 {
				last = s
			}
			if s.QueueDepth != 0 || !s.addsUp() {
				drained = false
				break
			}
		}
		if drained {
			// Read again: the counters must not move once drained.
			again, err := readStats(ctx, bases[0])
			if err == nil && again.Received == last.Received {
				return again
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not drained within %v: last stats %+v, last error %v", drainLimit, last, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// testEvent is one event as a publisher sends it; its payload is a function of its key, so
// a repeat is a retry, never a conflict.
type testEvent struct {
	Topic     string         `json:"topic"`
	EventID   string         `json:"event_id"`
	Timestamp string         `json:"timestamp"`
	Source    string         `json:"source"`
	Payload   map[string]any `json:"payload"`
}

func newTestEvent(topic, id string) testEvent {
	return testEvent{Topic: topic, EventID: id, Timestamp: "2026-11-25T10:00:00Z", Source: "aggregator-test",
		Payload: map[string]any{"id": id}}
}

func keysOf(events []testEvent) []storedKey {
	keys := make([]storedKey, len(events))
	for i, e := range events {
		keys[i] = storedKey{e.Topic, e.EventID}
	}
	return keys
}

// publishAnswer is a /publish answer: 200 and 202 fields, and the error of the others.
type publishAnswer struct {
	Status     int
	Received   int    `json:"received"`
	Unique     int    `json:"unique"`
	Duplicates int    `json:"duplicates"`
	Queued     int    `json:"queued"`
	Error      string `json:"error"`
	JSON       bool   // the answer was application/json
	RetryAfter string // the Retry-After header
}

// postEvents POSTs one batch. An error means no answer came (a transport failure).
func postEvents(ctx context.Context, client *http.Client, base string, events []testEvent) (publishAnswer, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return publishAnswer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/publish", bytes.NewReader(body))
	if err != nil {
		return publishAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return publishAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return publishAnswer{}, err
	}
	a := publishAnswer{Status: resp.StatusCode, JSON: resp.Header.Get("Content-Type") == "application/json",
		RetryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(raw, &a); err != nil {
		a.JSON = false
	}
	return a, nil
}

// getStatus GETs base+path and returns its status and body.
func getStatus(ctx context.Context, base, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// eventually retries check every 100ms until it succeeds or limit passes.
func eventually(t *testing.T, what string, limit time.Duration, check func() error) {
	t.Helper()
	testenv.Eventually(t, what, limit, 100*time.Millisecond, check)
}
