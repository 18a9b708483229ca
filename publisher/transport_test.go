package publisher

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// plainServer is an HTTP server that counts the connections it was opened.
func plainServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(handler)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func plainClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := newPlainTransport(timeout, 4)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// post sends body and returns the answer's body, read to its end.
func post(t *testing.T, ctx context.Context, c *http.Client, url, body string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

func echo(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	_, _ = w.Write(data)
}

func TestPlainTransportKeepsConnectionsAlive(t *testing.T) {
	srv, conns := plainServer(t, echo)
	c := plainClient(t, 10*time.Second)
	for i := range 20 {
		want := strings.Repeat("x", i)
		if got, err := post(t, t.Context(), c, srv.URL+"/publish", want); err != nil || got != want {
			t.Fatalf("request %d: %q, %v; want %q", i, got, err, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 requests one after another opened %d connections, want 1", n)
	}
}

func TestPlainTransportChunkedAnswers(t *testing.T) {
	srv, conns := plainServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first ")
		w.(http.Flusher).Flush() // no Content-Length: the answer is chunked
		_, _ = io.WriteString(w, "second")
	})
	c := plainClient(t, 10*time.Second)
	for i := range 3 {
		if got, err := post(t, t.Context(), c, srv.URL, "{}"); err != nil || got != "first second" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("chunked answers opened %d connections, want 1", n)
	}
}

func TestPlainTransportConnectionClose(t *testing.T) {
	srv, conns := plainServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		echo(w, r)
	})
	c := plainClient(t, 10*time.Second)
	for i := range 3 {
		if got, err := post(t, t.Context(), c, srv.URL, "ok"); err != nil || got != "ok" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("3 answers with Connection: close used %d connections, want 3", n)
	}
}

// A server may close a kept-alive connection while it is idle (its idle timeout): the next
// request goes over a new connection instead of failing.
func TestPlainTransportServerClosedIdleConnection(t *testing.T) {
	srv, conns := plainServer(t, echo)
	c := plainClient(t, 10*time.Second)
	if _, err := post(t, t.Context(), c, srv.URL, "one"); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	if got, err := post(t, t.Context(), c, srv.URL, "two"); err != nil || got != "two" {
		t.Fatalf("after the server closed the idle connection: %q, %v", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A body closed before its end closes its connection: the next answer is read from a new
// one, not from the rest of this one.
func TestPlainTransportBodyClosedEarly(t *testing.T) {
	big := strings.Repeat("y", 1<<20)
	srv, conns := plainServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		echo(w, r)
	})
	c := plainClient(t, 10*time.Second)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/big", strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, err := post(t, t.Context(), c, srv.URL, "next"); err != nil || got != "next" {
		t.Fatalf("after a body closed early: %q, %v", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestPlainTransportCancel(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv, _ := plainServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
	})
	defer close(release)
	c := plainClient(t, 10*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := post(t, ctx, c, srv.URL, "{}"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while waiting for the answer: %v, want context.Canceled", err)
	}
}

func TestPlainTransportTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := plainServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	c := plainClient(t, 50*time.Millisecond)
	_, err := post(t, t.Context(), c, srv.URL, "{}")
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("an answer slower than the timeout: %v, want a timeout", err)
	}
}

func TestUsesPlainTransport(t *testing.T) {
	for _, tc := range []struct {
		urls []string
		want bool
	}{
		{[]string{"http://127.0.0.1:8080"}, true},
		{[]string{"http://127.0.0.1:8080", "http://[::1]:8081"}, true},
		{[]string{"http://127.0.0.1:8080", "https://aggregator.example"}, false},
		{[]string{"https://aggregator.example"}, false},
	} {
		if got := usesPlainTransport(tc.urls); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.urls, got, tc.want)
		}
	}
}
