package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The profiles are served on the loopback address given, apart from the API, and stop with
// the aggregator.
func TestPprofServesProfilesOnLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if err := checkPprofAddr(addr); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	// Find a free port, then serve on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	stop, err := servePprof(addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("status %d, body %.200q", res.StatusCode, body)
	}
	stop()
	if res, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		res.Body.Close()
		t.Errorf("pprof still served after stop: %d", res.StatusCode)
	}
}
