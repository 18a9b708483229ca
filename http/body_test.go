package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPublishContentEncoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{limits: uts.Limits{MaxBodyBytes: 64 << 10}})
	bomb := gzipped(t, make([]byte, 16<<20)) // 16 MiB of zeros in about 16 KiB
	for i, c := range []struct {
		encoding string
		body     []byte
		want     int
	}{
		{"gzip", gzipped(t, mustJSON(t, event("encoding", 0))), http.StatusOK},
		{"GZIP", gzipped(t, mustJSON(t, event("encoding", 1))), http.StatusOK},
		{"identity", mustJSON(t, event("encoding", 2)), http.StatusOK},
		{"gzip", mustJSON(t, event("encoding", 3)), http.StatusBadRequest}, // says gzip, is not
		{"gzip", bomb, http.StatusRequestEntityTooLarge},
		{"br", mustJSON(t, event("encoding", 4)), http.StatusUnsupportedMediaType},
		{"deflate", mustJSON(t, event("encoding", 5)), http.StatusUnsupportedMediaType},
		{"gzip, gzip", gzipped(t, gzipped(t, mustJSON(t, event("encoding", 6)))), http.StatusUnsupportedMediaType},
	} {
		resp := e.publish(c.body, "Content-Encoding", c.encoding)
		if resp.status != c.want {
			t.Errorf("case %d, Content-Encoding %q: status %d, want %d; %s", i, c.encoding, resp.status, c.want, resp.body)
		}
	}
	if s := e.stats(); s.Received != 3 {
		t.Errorf("received %d, want 3: only the gzip and identity bodies count", s.Received)
	}
}

// slowUpload opens a connection that declares a body of length bytes (or, with length < 0,
// a chunked one) and sends sent bytes of it, then stalls.
func slowUpload(t *testing.T, addr string, length, sent int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	header := "POST /publish HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
	body := []byte(strings.Repeat(" ", sent))
	if length >= 0 {
		header += fmt.Sprintf("Content-Length: %d\r\n\r\n", length)
	} else {
		header += "Transfer-Encoding: chunked\r\n\r\n"
		body = append(fmt.Appendf(nil, "%x\r\n", sent), append(body, "\r\n"...)...)
	}
	if _, err := conn.Write(append([]byte(header), body...)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// statusOfConn reads the status of the answer on conn, waiting at most a few seconds.
func statusOfConn(t *testing.T, conn net.Conn) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPublishBodyMemoryIsCapped(t *testing.T) {
	t.Parallel()
	const capBytes = 64 << 10
	e := newEnv(t, envOptions{limits: uts.Limits{MaxBodyBytes: capBytes}, maxBodyMemory: capBytes})
	addr := e.server.Listener.Addr().String()
	small := mustJSON(t, event("memory", 0))

	// A slow body that declared the whole budget holds it: the next publisher is told to
	// come back, at once.
	hog := slowUpload(t, addr, capBytes, 1024)
	waitFor(t, "the slow body to hold the budget", func() bool {
		resp := e.publish(small)
		if resp.status == http.StatusServiceUnavailable && resp.header.Get("Retry-After") == "" {
			t.Fatal("a 503 without Retry-After")
		}
		return resp.status == http.StatusServiceUnavailable
	})
	hog.Close()
	waitFor(t, "the budget to be released", func() bool { return e.publish(small).status == http.StatusOK })

	// A chunked body reserves as it is read: the half it sent fits, its growth past what is
	// left does not.
	first := slowUpload(t, addr, -1, capBytes/2+1)
	// Its buffer grows to the whole budget as the server reads it. A small publish sent
	// while it grows would hold a few bytes of the budget, enough to refuse the growth
	// instead: give the server time to read it before publishing.
	time.Sleep(500 * time.Millisecond)
	waitFor(t, "the chunked body to hold half the budget", func() bool {
		return e.publish(small).status == http.StatusServiceUnavailable
	})
	second := slowUpload(t, addr, -1, capBytes/2+1)
	if got := statusOfConn(t, second); got != http.StatusServiceUnavailable {
		t.Errorf("a chunked body past the budget: status %d, want 503", got)
	}
	first.Close()
	waitFor(t, "the budget to be released", func() bool { return e.publish(small).status == http.StatusOK })
}

func TestPublishSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{bodyTimeout: 200 * time.Millisecond})
	conn := slowUpload(t, e.server.Listener.Addr().String(), 4096, 100)
	if got := statusOfConn(t, conn); got != http.StatusRequestTimeout {
		t.Errorf("a body slower than the timeout: status %d, want 408", got)
	}
	// The server closes the connection: a read finds its end, not a hang.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the connection is still open after the body timed out")
	}
	// A publisher that is not slow is not cut off by the same deadline while it waits.
	mustStatus(t, e.publish(mustJSON(t, event("slow", 0))), http.StatusOK)
}

func TestBodyBudgetKeepsHeadroomForSmallBodies(t *testing.T) {
	b := newBodyBudget(64<<20, 16<<20) // 16 MiB kept for bodies up to 256 KiB
	for range 3 {
		if err := b.reserve(16<<20, 16<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.reserve(16<<20, 16<<20); uts.KindOf(err) != uts.KindUnavailable {
		t.Fatalf("a fourth large body: %v, want unavailable", err)
	}
	if err := b.reserve(1<<20, 1<<20); err == nil {
		t.Fatal("a body of 1 MiB took the headroom kept for small ones")
	}
	for range 64 {
		if err := b.reserve(256<<10, 256<<10); err != nil {
			t.Fatalf("a small body in the headroom: %v", err)
		}
	}
	if err := b.reserve(1, 1); err == nil {
		t.Fatal("the budget is full, yet a byte was reserved")
	}
	b.release(64 << 20)
	if b.inUse() != 0 {
		t.Errorf("in use %d after releasing everything", b.inUse())
	}
	if tight := newBodyBudget(16<<20, 16<<20); tight.reserve(16<<20, 16<<20) != nil {
		t.Error("a budget of one largest body must hold one")
	}
}
