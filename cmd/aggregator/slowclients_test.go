package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rssBytes reads a process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// slowBodyClient declares a body of 16 MiB (or sends a chunked one), sends all but its last
// KiB as fast as the server takes it, and stalls. It returns how long the server took to
// close the connection, or an error if it had not within the bound.
func slowBodyClient(addr string, chunked bool, junk []byte) (time.Duration, error) {
	const declared = 16 << 20
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	header := "POST /publish HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
	if chunked {
		header += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		header += fmt.Sprintf("Content-Length: %d\r\n\r\n", declared)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, header); err != nil {
		return 0, err
	}
	// A refused body ends in a write error: the server answered and closed.
	for sent := 0; sent < declared-1024; sent += len(junk) {
		piece := junk[:min(len(junk), declared-1024-sent)]
		if chunked { // a fresh buffer: junk is shared by every client
			framed := fmt.Appendf(nil, "%x\r\n", len(piece))
			piece = append(append(framed, piece...), "\r\n"...)
		}
		if _, err := conn.Write(piece); err != nil {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return 0, fmt.Errorf("still open after %v", time.Since(start).Round(time.Millisecond))
	}
	return time.Since(start), nil
}

// TestSlowClientsAreBounded runs the real binary under clients that send large bodies
// slowly and that hold idle connections: the bodies it holds stay within -max-body-memory,
// every slow or idle connection is closed at its deadline, and an ordinary publisher at the
// same time is still served.
func TestSlowClientsAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary under 100 slow uploads")
	}
	bin, _ := binaries(t)
	const capBytes = 64 << 20
	p := startAggregator(t, bin, "-db", "sqlite:"+filepath.Join(t.TempDir(), "uts.db"),
		"-max-body-memory", strconv.Itoa(capBytes), "-body-timeout", "1s", "-idle-timeout", "1s")
	addr := strings.TrimPrefix(p.URL, "http://")
	pid := p.cmd.Process.Pid
	baseline, err := rssBytes(pid)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { // the resident set, every 20 ms
		for ctx.Err() == nil {
			if rss, err := rssBytes(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	var latencies []time.Duration
	var failures []string
	wg.Go(func() { // an ordinary publisher: batches of 10 events, one after the other
		client := &http.Client{Timeout: 10 * time.Second}
		for b := 0; b < 2000 && ctx.Err() == nil; b++ {
			var body bytes.Buffer
			body.WriteByte('[')
			for i := range 10 {
				if i > 0 {
					body.WriteByte(',')
				}
				fmt.Fprintf(&body, `{"topic":"steady","event_id":"b%d-%d","timestamp":"2026-11-25T10:00:00Z","source":"t","payload":{}}`, b, i)
			}
			body.WriteByte(']')
			start := time.Now()
			// As any publisher does, it sends again when the connection drops without an
			// answer: a kept-alive connection the server closes as idle just as the next
			// request goes out (a 1 s idle timeout, on a machine loaded enough to pause this
			// goroutine that long) is not a failure of the server.
			var resp *http.Response
			var err error
			for try := 0; try < 3; try++ {
				if resp, err = client.Post(p.URL+"/publish", "application/json", bytes.NewReader(body.Bytes())); err == nil {
					break
				}
			}
			if err != nil {
				failures = append(failures, err.Error())
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			latencies = append(latencies, time.Since(start))
			if resp.StatusCode != http.StatusOK {
				failures = append(failures, resp.Status)
			}
		}
	})

	junk := bytes.Repeat([]byte(" "), 256<<10)
	var mu sync.Mutex
	var closedAfter []time.Duration
	var slowErrs []error
	var clients sync.WaitGroup
	for i := range 100 {
		clients.Go(func() {
			d, err := slowBodyClient(addr, i%2 == 1, junk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				slowErrs = append(slowErrs, err)
				return
			}
			closedAfter = append(closedAfter, d)
		})
	}
	for range 50 { // idle keep-alive connections, after one request each
		clients.Go(func() {
			d, err := idleClient(addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				slowErrs = append(slowErrs, fmt.Errorf("idle: %w", err))
				return
			}
			closedAfter = append(closedAfter, d)
		})
	}
	clients.Wait()
	cancel()
	wg.Wait()

	for _, err := range slowErrs {
		t.Errorf("slow client: %v", err)
	}
	slices.Sort(closedAfter)
	if len(closedAfter) > 0 {
		t.Logf("slow and idle connections closed after %v (median) to %v (last)",
			closedAfter[len(closedAfter)/2].Round(time.Millisecond), closedAfter[len(closedAfter)-1].Round(time.Millisecond))
	}
	t.Logf("RSS: %d MiB at start, %d MiB at peak; cap on bodies %d MiB", baseline>>20, peak.Load()>>20, capBytes>>20)
	if limit := int64(capBytes + 100<<20); peak.Load() > limit {
		t.Errorf("RSS peaked at %d MiB, over the body cap plus 100 MB (%d MiB)", peak.Load()>>20, limit>>20)
	}
	for _, f := range failures {
		t.Errorf("the ordinary publisher failed: %s", f)
	}
	if len(latencies) == 0 {
		t.Fatal("the ordinary publisher sent nothing")
	}
	slices.Sort(latencies)
	t.Logf("ordinary publisher under the slow clients: %d requests, p50 %v, p99 %v", len(latencies),
		latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond))
}

// idleClient sends one request on a keep-alive connection, then holds the connection idle
// until the server closes it.
func idleClient(addr string) (time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return 0, err
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, conn) // the answer, then the end of the connection
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return 0, errors.New("still open after 10s")
	}
	return time.Since(start), nil
}
