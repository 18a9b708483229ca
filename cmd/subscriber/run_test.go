package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	utshttp "github.com/uts-events/uts/http"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/sqlite"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestFlagsAndTheirEnvironmentTwins: each flag has a UTS_ twin, a flag given wins over it,
// and -url and -topic take repeats and commas alike.
func TestFlagsAndTheirEnvironmentTwins(t *testing.T) {
	cfg, _, err := parseConfig(
		[]string{"-url", "http://a:1", "-url", "http://b:2,http://c:3", "-topic", "orders", "-topic", "refunds,payments", "-commit-every", "50"},
		env(map[string]string{"UTS_SUBSCRIPTION": "billing", "UTS_FROM": "latest", "UTS_OUT": "/tmp/x.ndjson",
			"UTS_COMMIT_EVERY": "999", "UTS_TOKEN": "r3ad", "UTS_URL": "http://ignored:9"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.URLs, " ") != "http://a:1 http://b:2 http://c:3" || strings.Join(cfg.Topics, " ") != "orders refunds payments" {
		t.Errorf("urls %v, topics %v", cfg.URLs, cfg.Topics)
	}
	if cfg.Subscription != "billing" || cfg.From != uts.StartLatest || cfg.Out != "/tmp/x.ndjson" || cfg.Token != "r3ad" || cfg.CommitEvery != 50 {
		t.Errorf("config %+v; want the twins applied and -commit-every 50 winning over UTS_COMMIT_EVERY", cfg)
	}
	cfg, _, err = parseConfig(nil, env(map[string]string{"UTS_TOPIC": "a,b", "UTS_SUBSCRIPTION": "s"}), &bytes.Buffer{})
	if err != nil || strings.Join(cfg.Topics, " ") != "a b" {
		t.Errorf("UTS_TOPIC=a,b: topics %v, %v", cfg.Topics, err)
	}
	for _, args := range [][]string{{}, {"-subscription", "s", "-from", "middle"}, {"-subscription", "s", "-commit-every", "0"}} {
		if _, _, err := parseConfig(args, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestRunDrainsToStdout runs the command against a real aggregator handler: the lines on
// stdout are the events with their cursors, and a summary goes to the log on stderr.
func TestRunDrainsToStdout(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "uts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	broker := inproc.New(inproc.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go broker.Consume(ctx, consumer.New(store, nil).Commit)
	server := httptest.NewServer(utshttp.NewHandler(utshttp.Config{Store: store, Broker: broker, ReadTokens: []string{"r3ad"}}))
	defer server.Close()
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if _, err := store.Append(ctx, []uts.Event{
		{Topic: "orders", EventID: "1", Timestamp: ts, Source: "t", Payload: json.RawMessage(`{"n":1}`)},
		{Topic: "refunds", EventID: "2", Timestamp: ts, Source: "t", Payload: json.RawMessage(`{}`)},
		{Topic: "orders", EventID: "3", Timestamp: ts, Source: "t", Payload: json.RawMessage(`{"n":3}`)},
	}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-url", server.URL, "-subscription", "cli", "-topic", "orders", "-exit-idle"},
		env(map[string]string{"UTS_TOKEN": "r3ad"}), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q; want the two orders events", stdout.String())
	}
	for i, want := range []string{"1", "3"} {
		var e struct {
			EventID string          `json:"event_id"`
			Payload json.RawMessage `json:"payload"`
			Cursor  string          `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil || e.EventID != want || e.Cursor == "" || len(e.Payload) == 0 {
			t.Errorf("line %d %q: %v; want event %s with its payload and cursor", i, lines[i], err, want)
		}
	}
	if !strings.Contains(stderr.String(), "subscriber stopped") || !strings.Contains(stderr.String(), "events=2") {
		t.Errorf("stderr %q; want the summary", stderr.String())
	}

	stderr.Reset()
	err = run(ctx, []string{"-url", server.URL, "-subscription", "cli", "-exit-idle"}, env(map[string]string{"UTS_TOKEN": "r3ad"}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "-topic") {
		t.Errorf("following the same name with other topics: %v; want the 409 and what to do", err)
	}
}
