package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShutdownEndsWaitsAndStreams: a request waiting for events and an open event stream do
// not hold a graceful shutdown: the wait answers [] and the stream ends as the shutdown
// begins, well within a shutdown timeout that they would otherwise use up.
func TestShutdownEndsWaitsAndStreams(t *testing.T) {
	t.Parallel()
	bin, _ := binaries(t)
	agg := startAggregator(t, bin, "-db", "sqlite:"+filepath.Join(t.TempDir(), "uts.db"), "-shutdown-timeout", "20s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream := openRequest(t, ctx, agg.URL+"/events/stream")
	if stream == nil {
		t.FailNow()
	}
	line, err := bufio.NewReader(stream.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("the stream began with %q, %v", line, err)
	}
	waited := make(chan string, 1)
	go func() {
		resp := openRequest(t, ctx, agg.URL+"/events?wait=60s")
		if resp == nil {
			waited <- "no answer"
			return
		}
		body, _ := io.ReadAll(resp.Body)
		waited <- resp.Status + " " + strings.TrimSpace(string(body))
	}()
	time.Sleep(200 * time.Millisecond) // the wait is under way (not a timed assertion: a late one is answered at once)

	agg.Stop(t)
	if logs := agg.Logs(); strings.Contains(logs, "did not finish cleanly") {
		t.Errorf("the shutdown timed out:\n%s", logs)
	}
	if got := <-waited; got != "200 OK []" {
		t.Errorf("the waiting request answered %q, want 200 OK []", got)
	}
	if _, err := io.Copy(io.Discard, stream.Body); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
}

func openRequest(t *testing.T, ctx context.Context, url string) *http.Response {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return nil
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
