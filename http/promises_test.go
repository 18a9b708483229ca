package http

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/uts-events/uts"
)

// Promise 1: a 200 from /publish means the events are on disk.
func TestPromiseDurableAfter200(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	sent := events("durable", 0, 50)
	mustStatus(t, e.publish(mustJSON(t, sent)), http.StatusOK)

	store := e.reopen()
	got, err := store.Events(context.Background(), uts.EventQuery{Topics: []string{"durable"}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sent) {
		t.Fatalf("%d events after reopening, want %d", len(got), len(sent))
	}
	for i, ev := range got {
		if ev.EventID != sent[i]["event_id"] || string(ev.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("event %d after reopening: %+v", i, ev)
		}
	}
}

// Promise 2: an event published many times, one after another and at once, is stored once.
func TestPromiseStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	body := mustJSON(t, event("once", 0))
	mustStatus(t, e.publish(body), http.StatusOK)
	mustStatus(t, e.publish(body), http.StatusOK)

	const goroutines, each = 16, 5
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				resp, err := e.send("POST", "/publish", mustJSON(t, []any{event("once", 0), event("once", 1)}), "Content-Type", "application/json")
				if err != nil || resp.status != http.StatusOK {
					t.Errorf("publish: %v %d %s", err, resp.status, resp.body)
				}
			}
		})
	}
	wg.Wait()

	stored, _ := walkPages(t, e, "/events?topic=once")
	if len(stored) != 2 {
		t.Errorf("%d events stored, want 2: %+v", len(stored), stored)
	}
	s := e.stats()
	total := int64(2 + goroutines*each*2)
	if s.Received != total || s.UniqueProcessed != 2 || s.DuplicateDropped != total-2 || s.Topics["once"] != 2 {
		t.Errorf("stats %+v topics %v, want %d received, 2 unique", s.Counters, s.Topics, total)
	}
}

// Promise 3: concurrent overlapping publishes leave counters that add up, and they survive
// a restart.
func TestPromiseCountersAddUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const goroutines, batches, size = 8, 6, 20
	// Each goroutine publishes windows that overlap its neighbours' and its own earlier ones.
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for b := range batches {
				from := g*15 + b*10
				body := mustJSON(t, append(events("count-a", from, from+size/2), events("count-b", from, from+size/2)...))
				resp, err := e.send("POST", "/publish", body, "Content-Type", "application/json")
				if err != nil || resp.status != http.StatusOK {
					t.Errorf("publish: %v %d %s", err, resp.status, resp.body)
				}
			}
		})
	}
	wg.Wait()

	// The distinct keys published: per topic, the union of the windows.
	distinct := map[int]bool{}
	for g := range goroutines {
		for b := range batches {
			for i := g*15 + b*10; i < g*15+b*10+size/2; i++ {
				distinct[i] = true
			}
		}
	}
	wantUnique := int64(2 * len(distinct))
	wantReceived := int64(goroutines * batches * size)

	check := func(when string, c uts.Counters, topics map[string]int64) {
		t.Helper()
		if c.Received != wantReceived || c.UniqueProcessed != wantUnique || c.DuplicateDropped != wantReceived-wantUnique {
			t.Errorf("%s: %+v, want received %d, unique %d", when, c, wantReceived, wantUnique)
		}
		if c.Received != c.UniqueProcessed+c.DuplicateDropped+c.DeadLettered {
			t.Errorf("%s: counters do not add up: %+v", when, c)
		}
		if topics["count-a"] != int64(len(distinct)) || topics["count-b"] != int64(len(distinct)) {
			t.Errorf("%s: topics %v, want %d each", when, topics, len(distinct))
		}
	}
	s := e.stats()
	check("live", s.Counters, s.Topics)
	if s.QueueDepth != 0 {
		t.Errorf("queue_depth %d after every publish was answered", s.QueueDepth)
	}

	store := e.reopen()
	after, err := store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]int64{}
	for _, ts := range after.Topics {
		topics[ts.Topic] = ts.Unique
	}
	check("after reopening", after.Counters, topics)
}

// Promise 4: a batch with one bad event is refused whole, naming the event and its field.
func TestPromiseBadBatchChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, event("reject", 100))), http.StatusOK)
	before := e.stats()

	batch := events("reject", 0, 5)
	batch[3]["timestamp"] = "not a time"
	resp := e.publish(mustJSON(t, batch))
	mustStatus(t, resp, http.StatusUnprocessableEntity)
	var got errorBody
	resp.decode(t, &got)
	if len(got.Details) != 1 || got.Details[0].Index != 3 || got.Details[0].Field != "timestamp" {
		t.Errorf("details %+v, want exactly index 3 field timestamp", got.Details)
	}

	after := e.stats()
	if after.Counters != before.Counters || fmt.Sprint(after.Topics) != fmt.Sprint(before.Topics) {
		t.Errorf("a refused batch changed the stats: before %+v, after %+v", before, after)
	}
	stored, _ := walkPages(t, e, "/events?topic=reject")
	if len(stored) != 1 {
		t.Errorf("%d events stored, want only the earlier one", len(stored))
	}
}
