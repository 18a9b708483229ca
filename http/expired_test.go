package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
	"github.com/uts-events/uts/storetest"
)

// expireTopic deletes every stored event of topic as an expiry round two hours from now
// would with a retention of an hour for it.
func (e *env) expireTopic(topic string) {
	e.t.Helper()
	storetest.ExpireAll(e.t, e.store, uts.Retention{Topics: map[string]time.Duration{topic: time.Hour}}, time.Now().Add(2*time.Hour), 1000)
}

// TestExpiredEventsAreReported: a reader whose cursor lies before events that retention
// deleted gets the events still held, and is told what it lost, on every way of reading
// the feed; a reader past them, or of a topic that lost nothing, is not.
func TestExpiredEventsAreReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("gone", 0, 5))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("kept", 0, 3))), http.StatusOK)
	// The pages carry no cursor per event (only the Link's); the store tells them.
	first, err := e.store.Events(t.Context(), uts.EventQuery{Topics: []string{"gone"}, Limit: 10})
	if err != nil || len(first) != 5 {
		t.Fatalf("read %d events of gone, %v; want 5", len(first), err)
	}
	e.putSubscription("follower", `{"topics": ["gone"], "start": "earliest"}`, http.StatusCreated)
	e.expireTopic("gone")
	lastExpired := first[4].Cursor.String()

	page := e.do("GET", "/events?topic=gone&after="+first[1].Cursor.String(), nil)
	mustStatus(t, page, http.StatusOK)
	if got := page.header.Get(expiredHeader); got != lastExpired {
		t.Fatalf("%s = %q after an expired cursor, want %q", expiredHeader, got, lastExpired)
	}
	var list []uts.StoredEvent
	page.decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("expired events still listed: %d", len(list))
	}
	// The events still held come after the gap, and the header keeps saying so.
	mustStatus(t, e.publish(mustJSON(t, events("gone", 5, 6))), http.StatusOK)
	page = e.do("GET", "/events?topic=gone&after="+first[1].Cursor.String(), nil)
	page.decode(t, &list)
	if len(list) != 1 || list[0].EventID != "gone-5" || page.header.Get(expiredHeader) != lastExpired {
		t.Fatalf("after the gap: %d events, header %q; want gone-5 and %q", len(list), page.header.Get(expiredHeader), lastExpired)
	}
	held, err := e.store.Events(t.Context(), uts.EventQuery{Topics: []string{"gone"}, Limit: 10})
	if err != nil || len(held) != 1 {
		t.Fatalf("held: %d events, %v; want gone-5", len(held), err)
	}
	for _, path := range []string{
		"/events?topic=gone&after=" + held[0].Cursor.String(), // past the gap
		"/events?topic=kept",            // lost nothing
		"/events?topic=gone&order=desc", // newest first skips nothing it promised
	} {
		if got := e.do("GET", path, nil).header.Get(expiredHeader); got != "" {
			t.Errorf("GET %s: %s = %q, want none", path, expiredHeader, got)
		}
	}
	if got := e.do("GET", "/events", nil).header.Get(expiredHeader); got != lastExpired {
		t.Errorf("the whole feed from the start: %s = %q, want %q", expiredHeader, got, lastExpired)
	}

	export := e.do("GET", "/events?topic=gone", nil, "Accept", ndjson)
	mustStatus(t, export, http.StatusOK)
	if got := export.header.Get(expiredHeader); got != lastExpired {
		t.Errorf("export: %s = %q, want %q", expiredHeader, got, lastExpired)
	}

	sub := e.do("GET", "/subscriptions/follower/events", nil)
	mustStatus(t, sub, http.StatusOK)
	if got := sub.header.Get(expiredHeader); got != lastExpired {
		t.Errorf("subscription: %s = %q, want %q", expiredHeader, got, lastExpired)
	}

	stream := e.openStream("/events/stream?topic=gone")
	m := stream.next(t)
	for m.event == "" { // retry:
		m = stream.next(t)
	}
	var said struct {
		ExpiredThrough string `json:"expired_through"`
	}
	if err := json.Unmarshal([]byte(m.data), &said); m.event != "expired" || err != nil || said.ExpiredThrough != lastExpired {
		t.Fatalf("stream's first message: event %q data %q; want expired through %s", m.event, m.data, lastExpired)
	}
	if _, ev := stream.nextEvent(t); ev.EventID != "gone-5" {
		t.Fatalf("stream goes on with %s, want gone-5", ev.EventID)
	}

	st := e.stats()
	if st.Stored != 4 || st.Expired != 5 || st.UniqueProcessed != 9 {
		t.Fatalf("/stats stored %d expired %d unique %d; want 4, 5, 9", st.Stored, st.Expired, st.UniqueProcessed)
	}
}

// expiringStore runs expire once, before the second read of the feed: retention deleting
// events ahead of a reader that is part way through the feed.
type expiringStore struct {
	uts.Store
	reads  atomic.Int32
	expire func()
}

func (s *expiringStore) Events(ctx context.Context, q uts.EventQuery) ([]uts.StoredEvent, error) {
	if s.reads.Add(1) == 2 {
		s.expire()
	}
	return s.Store.Events(ctx, q)
}

// TestExportReportsEventsExpiredDuringIt: an export reads the feed a chunk at a time; events
// that retention deletes after the first chunk, before the export reached them, are lost to
// it as much as those deleted before it began, and it must not end as if it had every event.
func TestExportReportsEventsExpiredDuringIt(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "uts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var batch []uts.Event
	for i := range exportChunk + 5 {
		batch = append(batch, uts.Event{Topic: "t", EventID: fmt.Sprint(i), Timestamp: time.Now(), Source: "s", Payload: []byte(`{}`)})
	}
	if _, err := store.Append(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	wrapped := &expiringStore{Store: store, expire: func() {
		if _, err := store.Expire(context.Background(), uts.Retention{Events: time.Hour}, time.Now().Add(2*time.Hour), 10_000); err != nil {
			t.Errorf("Expire: %v", err)
		}
	}}
	server := httptest.NewServer(NewHandler(Config{Store: wrapped}))
	defer server.Close()
	req, err := http.NewRequestWithContext(t.Context(), "GET", server.URL+"/events?topic=t", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ndjson)
	resp, err := server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	lines := bytes.Count(body, []byte("\n"))
	told := resp.Header.Get(expiredHeader) != "" || resp.Trailer.Get(expiredHeader) != "" || readErr != nil
	if lines < len(batch) && !told {
		t.Fatalf("the export ended cleanly with %d of %d events, and no %s: the reader cannot tell it lost %d",
			lines, len(batch), expiredHeader, len(batch)-lines)
	}
}
