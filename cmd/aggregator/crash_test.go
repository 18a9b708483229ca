package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashLosesNoAcknowledgedEvent kills the aggregator with SIGKILL under load and
// restarts it on the same file: every event that was answered 200 is stored, exactly once,
// and the counters still add up.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds and kills the binary")
	}
	aggregatorBin, _ := binaries(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "uts.db")
	agg := startAggregator(t, aggregatorBin, "-db", db)

	const (
		publishers = 8
		batches    = 400 // per publisher, an upper bound: the kill comes first
		batchSize  = 50
	)
	var (
		mu    sync.Mutex
		acked = map[storedKey]bool{}
		sent  atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if ctx.Err() != nil {
					return
				}
				keys := make([]storedKey, batchSize)
				events := make([]map[string]any, batchSize)
				for i := range events {
					// Every other batch repeats half of the previous one: duplicates in flight.
					id := fmt.Sprintf("p%d-b%d-%d", p, b, i)
					if b > 0 && i%2 == 0 {
						id = fmt.Sprintf("p%d-b%d-%d", p, b-1, i)
					}
					keys[i] = storedKey{"crash", id}
					events[i] = map[string]any{"topic": "crash", "event_id": id,
						"timestamp": "2026-11-25T10:00:00Z", "source": "crash-test", "payload": map[string]any{"i": i}}
				}
				body, _ := json.Marshal(events)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, agg.URL+"/publish", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				sent.Add(1)
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					for _, k := range keys {
						acked[k] = true
					}
					mu.Unlock()
				}
			}
		}()
	}

	// Kill mid-load: once a good number of batches are through, but well before the end.
	deadline := time.Now().Add(30 * time.Second)
	for sent.Load() < publishers*20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	agg.Kill()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatalf("no batch was acknowledged before the kill:\n%s", agg.Logs())
	}

	agg = startAggregator(t, aggregatorBin, "-db", db)
	stored := allEvents(t, agg.URL)
	for k := range acked {
		if stored[k] != 1 {
			t.Fatalf("acknowledged event %v stored %d times after the crash", k, stored[k])
		}
	}
	s := getStats(t, agg.URL)
	if s.UniqueProcessed != int64(len(stored)) || s.Received != s.UniqueProcessed+s.DuplicateDropped {
		t.Fatalf("after the crash: stats %+v with %d stored events", s, len(stored))
	}
	t.Logf("%d acknowledged events, %d stored, %d received before the kill", len(acked), len(stored), s.Received)
	agg.Stop(t)
}
