package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

type bins struct{ aggregator, publisher, subscriber string }

// binaries builds cmd/aggregator, cmd/publisher and cmd/subscriber once per test run.
func binaries(t *testing.T) bins {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "uts-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"aggregator", "publisher", "subscriber"} {
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
	return bins{filepath.Join(binDir, "aggregator"), filepath.Join(binDir, "publisher"), filepath.Join(binDir, "subscriber")}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// process is a running binary with its output kept for failure messages.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	logs *testenv.Buffer
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	logs := &testenv.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logs: logs}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Kill)
	return p
}

// Kill sends SIGKILL: no shutdown code runs.
func (p *process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGINT and waits for the process to exit by itself; the exit code is returned.
func (p *process) Stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s:\n%s", p.cmd.Path, p.logs)
	}
	return p.cmd.ProcessState.ExitCode()
}

// startAggregator starts the binary and waits until it answers /healthz; it returns its URL.
func startAggregator(t *testing.T, bin string, args ...string) (string, *process) {
	t.Helper()
	addr := testenv.FreeAddr(t)
	p := startProcess(t, bin, append([]string{"-addr", addr}, args...)...)
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("aggregator exited at start:\n%s", p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregator not healthy within 30s:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
