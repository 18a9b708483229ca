package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

func noEnv(string) string { return "" }

// startRun runs the aggregator in this process through run(), as main does.
func startRun(t *testing.T, args ...string) (url string, stop func() error) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, append([]string{"-addr", addr}, args...), noEnv, io.Discard, io.Discard) }()
	url = "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-errc:
			cancel()
			t.Fatalf("run exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("aggregator not up within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("run did not return within 30s")
		}
	}
}

// TestRestartKeepsDedupAndCounters publishes the same batch before and after a clean
// restart on one file: the second time everything is a duplicate, and the counters carry on.
func TestRestartKeepsDedupAndCounters(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "nested", "uts.db")
	var batch strings.Builder
	batch.WriteString("[")
	for i := range 10 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"topic":"restart","event_id":"e%d","timestamp":"2026-11-25T10:00:00Z","source":"t","payload":{}}`, i%8)
	}
	batch.WriteString("]")

	want := []stats{{Received: 10, UniqueProcessed: 8, DuplicateDropped: 2}, {Received: 20, UniqueProcessed: 8, DuplicateDropped: 12}}
	for round, w := range want {
		url, stop := startRun(t, "-db", db)
		resp, err := http.Post(url+"/publish", "application/json", bytes.NewReader([]byte(batch.String())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("round %d: publish answered %d", round, resp.StatusCode)
		}
		got := getStats(t, url)
		if got.Received != w.Received || got.UniqueProcessed != w.UniqueProcessed || got.DuplicateDropped != w.DuplicateDropped {
			t.Fatalf("round %d: stats %+v, want %+v", round, got, w)
		}
		if got.Topics["restart"] != 8 {
			t.Fatalf("round %d: topics %v, want restart: 8", round, got.Topics)
		}
		if err := stop(); err != nil {
			t.Fatalf("round %d: clean shutdown: %v", round, err)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	err := run(context.Background(), []string{"-workers", "0", "-db", "mysql://x"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-workers") || !strings.Contains(err.Error(), "-db") {
		t.Fatalf("got %v, want errors naming -workers and -db", err)
	}
}
