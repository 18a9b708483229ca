package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts/internal/testenv"
)

// These helpers run the real binaries as subprocesses, the way a user does.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds cmd/aggregator and cmd/publisher once per test run.
func binaries(t *testing.T) (aggregator, publisher string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "uts-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"aggregator", "publisher"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, pkg), "../"+pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "aggregator"), filepath.Join(binDir, "publisher")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type aggregatorProcess struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	logs *strings.Builder
}

// startAggregator starts the binary and waits until it answers /healthz.
func startAggregator(t *testing.T, bin string, args ...string) *aggregatorProcess {
	t.Helper()
	addr := testenv.FreeAddr(t)
	logs := &strings.Builder{}
	cmd := exec.Command(bin, append([]string{"-addr", addr}, args...)...)
	cmd.Stdout = &lockedWriter{w: logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &aggregatorProcess{URL: "http://" + addr, cmd: cmd, done: make(chan struct{}), logs: logs}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("aggregator exited at start:\n%s", p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregator not healthy within 30s:\n%s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *aggregatorProcess) Logs() string {
	lw := p.cmd.Stdout.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return p.logs.String()
}

// Kill sends SIGKILL: no shutdown code runs.
func (p *aggregatorProcess) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *aggregatorProcess) Stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("aggregator did not stop within 30s:\n%s", p.Logs())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("aggregator exited %d:\n%s", code, p.Logs())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

type stats struct {
	Received         int64            `json:"received"`
	UniqueProcessed  int64            `json:"unique_processed"`
	DuplicateDropped int64            `json:"duplicate_dropped"`
	Topics           map[string]int64 `json:"topics"`
}

func getStats(t *testing.T, url string) stats {
	t.Helper()
	var s stats
	getJSON(t, url+"/stats", &s)
	return s
}

func getJSON(t *testing.T, url string, into any) http.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.Header
}

type storedKey struct{ Topic, EventID string }

// allEvents walks /events through its Link headers and returns every stored key with the
// number of times it was listed.
func allEvents(t *testing.T, base string) map[storedKey]int {
	t.Helper()
	// On PostgreSQL the feed may hold committed events back for a moment, behind any
	// transaction in flight on the server (another test's included): read again until it
	// hands out as many as /stats says are stored.
	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, err := readStats(context.Background(), base)
		if err != nil {
			t.Fatalf("read /stats: %v", err)
		}
		seen := readEventsOnce(t, base)
		if int64(len(seen)) >= stats.UniqueProcessed || time.Now().After(deadline) {
			return seen
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readEventsOnce reads every stored event once, following the Link headers.
func readEventsOnce(t *testing.T, base string) map[storedKey]int {
	t.Helper()
	seen := map[storedKey]int{}
	next := base + "/events?limit=10000"
	for pages := 0; next != "" && pages < 1000; pages++ {
		var page []struct {
			Topic   string `json:"topic"`
			EventID string `json:"event_id"`
		}
		h := getJSON(t, next, &page)
		for _, e := range page {
			seen[storedKey{e.Topic, e.EventID}]++
		}
		next = ""
		if link := h.Get("Link"); link != "" {
			start, end := strings.Index(link, "<"), strings.Index(link, ">")
			if start >= 0 && end > start {
				next = base + link[start+1:end]
			}
		}
	}
	return seen
}
