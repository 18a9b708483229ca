package http

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/sqlite"
)

// smallBuffers sets a socket's kernel buffers small, so that a reader that does not read
// stalls the server's writes after a few kilobytes instead of megabytes: the test then
// needs little data to reach the state it is about.
func smallBuffers(opt int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		ctrlErr := c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<10) })
		if ctrlErr != nil {
			return ctrlErr
		}
		return err
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// vmRSS is this process's resident set, from /proc; 0 where there is none.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestSlowStreamsHoldNoMemory: 100 streams whose readers read nothing, over a feed of 16 MB,
// hold at most a page each in the server's memory, never the feed; and once a page has
// waited past the write timeout, the server drops them and frees their slots. The handler
// runs on slots of the test's own, so that it sees when every stream holds one and when none
// does.
func TestSlowStreamsHoldNoMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 16 MB of events")
	}
	const (
		streams   = 100
		feed      = 4000
		eventSize = 4 << 10
		// writeWindow leaves the time to open every stream before the first is dropped.
		writeWindow = 5 * time.Second
		bound       = 100 << 20 // far below what one copy of the feed per stream (1.6 GB) would take
	)
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "uts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	start := time.Now()
	payload := []byte(`{"pad":"` + strings.Repeat("x", eventSize-64) + `"}`)
	batch := make([]uts.Event, 0, 1000)
	for i := range feed {
		batch = append(batch, uts.Event{Topic: "big", EventID: strconv.Itoa(i), Timestamp: time.Now().UTC(), Source: "test", Payload: payload})
		if len(batch) == cap(batch) {
			if _, err := store.Append(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	slots := newWaitSlots(streams)
	logger := slog.New(slog.DiscardHandler)
	server := httptest.NewUnstartedServer(handleEventStream(store, slots, streamConfig{heartbeat: time.Hour, writeWindow: writeWindow}, logger))
	server.Listener.Close()
	lc := net.ListenConfig{Control: smallBuffers(syscall.SO_SNDBUF)}
	if server.Listener, err = lc.Listen(context.Background(), "tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	server.Start()
	t.Cleanup(server.Close)

	t.Logf("stored %d events in %v", feed, time.Since(start))
	baseHeap, baseRSS := heapInUse(), vmRSS()
	dialer := net.Dialer{Control: smallBuffers(syscall.SO_RCVBUF), Timeout: 10 * time.Second}
	conns := make([]net.Conn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range streams {
		c, err := dialer.Dial("tcp", server.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /events/stream HTTP/1.1\r\nHost: uts\r\nAccept: text/event-stream\r\n\r\n")
	}
	// The readers read nothing at all; the memory is what the stalled streams hold.
	var peakHeap, peakRSS uint64
	waitFor(t, "every stream to hold a slot", func() bool { return len(slots) == streams })
	for range 5 {
		peakHeap, peakRSS = max(peakHeap, heapInUse()), max(peakRSS, vmRSS())
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d stalled streams over %d events of %d B: heap in use %d MB → at most %d MB, RSS %d MB → %d MB (the race detector's shadow included when on)",
		streams, feed, eventSize, baseHeap>>20, peakHeap>>20, baseRSS>>20, peakRSS>>20)
	if peakHeap > baseHeap+bound {
		t.Errorf("the stalled streams hold %d MB of heap, more than %d MB", (peakHeap-baseHeap)>>20, bound>>20)
	}

	// Past the write timeout the stalled streams are dropped: their slots are free, and each
	// connection ends after what the kernel had buffered (a live stream would go on sending
	// its 16 MB once read).
	waitFor(t, "the stalled streams to be dropped", func() bool { return len(slots) == 0 })
	ended := make(chan error, streams)
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			n, err := io.Copy(io.Discard, io.LimitReader(c, 4<<20))
			if err == nil && n == 4<<20 {
				err = fmt.Errorf("%d bytes and more after the drop", n)
			}
			ended <- err
		}()
	}
	for range streams {
		if err := <-ended; err != nil {
			t.Fatalf("a stalled stream was not dropped: %v", err)
		}
	}
}
