package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uts-events/uts/internal/testenv"
)

// TestProbe: the container health check succeeds exactly on a 2xx, and never starts a server.
func TestProbe(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	probeRun := func(target string) error {
		// -addr on a port that is surely taken: a probe that tried to serve would fail there.
		return run(context.Background(), []string{"-addr", srv.Listener.Addr().String(), "-probe", target}, noEnv, io.Discard, io.Discard)
	}
	if err := probeRun(srv.URL + "/readyz"); err != nil {
		t.Fatalf("probe of a 200: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := probeRun(srv.URL + "/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("probe of a 503: %v, want an error naming the status", err)
	}
	if err := probeRun(srv.URL + "/nowhere"); err == nil {
		t.Fatal("probe of a 404 succeeded")
	}
	if err := probeRun("http://" + testenv.FreeAddr(t) + "/readyz"); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
	if err := probeRun("localhost:8080/readyz"); err == nil || !strings.Contains(err.Error(), "-probe") {
		t.Fatalf("probe of a URL without scheme: %v, want an error naming -probe", err)
	}
}

// TestProbeHasNoVariable: a UTS_PROBE in a container's environment must not turn the server
// into a probe.
func TestProbeHasNoVariable(t *testing.T) {
	t.Parallel()
	if slices.Contains(envVariables(), "UTS_PROBE") {
		t.Fatal("UTS_PROBE is read; every start in that environment would probe instead of serve")
	}
}
