package subscriber_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	utshttp "github.com/uts-events/uts/http"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/sqlite"
)

// These tests and benchmarks run the subscriber against the real aggregator: its HTTP
// handler, in-process broker, consumer and a real store, in this process.

type store interface {
	uts.Store
	uts.Subscriptions
}

func openSQLite(tb testing.TB) store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "uts.db"))
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(tb testing.TB) store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), testenv.PostgresSchema(tb))
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// serve starts the aggregator's handler over s; wrap, when not nil, stands between the
// network and the handler (a test injects faults there). It returns the base URL.
func serve(tb testing.TB, s store, wrap func(http.Handler) http.Handler, readToken string) string {
	tb.Helper()
	broker := inproc.New(inproc.Options{Linger: 0})
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() { consumed <- broker.Consume(ctx, consumer.New(s, nil).Commit) }()
	cfg := utshttp.Config{Store: s, Broker: broker}
	if readToken != "" {
		cfg.ReadTokens = []string{readToken}
	}
	var h http.Handler = utshttp.NewHandler(cfg)
	if wrap != nil {
		h = wrap(h)
	}
	server := httptest.NewServer(h)
	tb.Cleanup(func() {
		server.Close()
		cancel()
		select {
		case <-consumed:
		case <-time.After(30 * time.Second):
			tb.Error("consumer did not stop within 30s")
		}
	})
	return server.URL
}

// fill appends n events over topics, in batches, straight into the store.
func fill(tb testing.TB, s store, prefix string, n int, topics ...string) {
	tb.Helper()
	payload := json.RawMessage(`{"amount_cents":129900,"currency":"EUR","customer":"c-88213","items":[{"qty":1,"sku":"KB-01"},{"qty":2,"sku":"MS-07"}]}`)
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const batch = 5000
	for start := 0; start < n; start += batch {
		events := make([]uts.Event, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			events = append(events, uts.Event{Topic: topics[i%len(topics)], EventID: prefix + strconv.Itoa(i),
				Timestamp: ts.Add(time.Duration(i) * time.Millisecond), Source: "subscriber-test", Payload: payload})
		}
		if _, err := s.Append(context.Background(), events); err != nil {
			tb.Fatalf("append: %v", err)
		}
	}
}

// line is what the subscriber writes per event.
type line struct {
	Topic   string `json:"topic"`
	EventID string `json:"event_id"`
	Cursor  string `json:"cursor"`
}

func parseLines(tb testing.TB, data []byte) []line {
	tb.Helper()
	var lines []line
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var l line
		if err := dec.Decode(&l); err != nil {
			tb.Fatalf("line %d: %v", len(lines)+1, err)
		}
		if l.Cursor == "" || l.EventID == "" {
			tb.Fatalf("line %d has no cursor or event_id: %+v", len(lines)+1, l)
		}
		lines = append(lines, l)
	}
	return lines
}

func ids(lines []line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprintf("%s/%s", l.Topic, l.EventID)
	}
	return out
}
