package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestEndToEndPublisherVerify runs the real aggregator and the real publisher with -verify:
// 20,000 events with 30% duplicates end as exactly 14,000 unique and 6,000 dropped.
func TestEndToEndPublisherVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs both binaries")
	}
	aggregatorBin, publisherBin := binaries(t)
	agg := startAggregator(t, aggregatorBin, "-db", "sqlite:"+filepath.Join(t.TempDir(), "data", "uts.db"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, publisherBin, "-url", agg.URL, "-events", "20000",
		"-duplicates", "0.3", "-topics", "5", "-batch", "100", "-concurrency", "8", "-seed", "1", "-verify").CombinedOutput()
	if err != nil {
		t.Fatalf("publisher -verify failed: %v\n%s\naggregator:\n%s", err, out, agg.Logs())
	}
	s := getStats(t, agg.URL)
	if s.UniqueProcessed != 14000 || s.DuplicateDropped != 6000 || s.Received != 20000 {
		t.Fatalf("stats %+v, want received 20000, unique 14000, duplicates 6000", s)
	}
	var perTopic int64
	for _, n := range s.Topics {
		perTopic += n
	}
	if len(s.Topics) != 5 || perTopic != 14000 {
		t.Fatalf("topics %v, want 5 topics summing to 14000", s.Topics)
	}
	agg.Stop(t)
}
