package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SQLite's own faults: the disk under the file fills up, or the file system turns
// read-only. Each runs the aggregator in this process on a size-limited tmpfs of the test's
// own (mounting one needs root; elsewhere the tests skip), and must answer 503 with
// Retry-After and a message that says what is wrong, store nothing of a refused batch, and
// recover by itself, without a restart, once the fault clears.

// mountTmpfs mounts a tmpfs of the given size on a new folder and unmounts it when the test
// ends, after everything the test opens there later is closed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (it needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, options string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+options, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, options, err, out)
	}
}

// bulkyBatch is size events of about 2 KiB each: a few of them fill a small disk.
func bulkyBatch(b, size int) []testEvent {
	filler := strings.Repeat("x", 2000)
	events := make([]testEvent, size)
	for i := range events {
		events[i] = newTestEvent("bulky", fmt.Sprintf("b%d-%d", b, i))
		events[i].Payload["filler"] = filler
	}
	return events
}

// faultyStore runs the aggregator on a fresh tmpfs of size and returns its URL and folder.
func faultyStore(t *testing.T, size string) (url, dir string) {
	t.Helper()
	dir = mountTmpfs(t, size)
	url, stop := startRun(t, "-db", "sqlite:"+filepath.Join(dir, "uts.db"))
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	})
	return url, dir
}

// wantOutage checks a refused publish: 503, Retry-After, and the message.
func wantOutage(t *testing.T, a publishAnswer, message string) {
	t.Helper()
	if a.Status != http.StatusServiceUnavailable || a.RetryAfter == "" || !strings.Contains(a.Error, message) {
		t.Fatalf("answer %d (Retry-After %q): %q; want 503 with Retry-After naming %q", a.Status, a.RetryAfter, a.Error, message)
	}
}

// wantExact checks that the store holds exactly the events answered 200, each once.
func wantExact(t *testing.T, url string, answered int) {
	t.Helper()
	s := waitDrained(t, url)
	if s.Received != int64(answered) || s.UniqueProcessed != int64(answered) || s.DuplicateDropped != 0 {
		t.Errorf("stats %+v; want received = unique = %d, the events answered 200", s, answered)
	}
	if stored := allEvents(t, url); len(stored) != answered {
		t.Errorf("%d events stored, want %d", len(stored), answered)
	}
}

func TestSQLiteDiskFull(t *testing.T) {
	t.Parallel()
	url, dir := faultyStore(t, "3m")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	answered := 0
	var refused []testEvent
	for b := 0; b < 200 && refused == nil; b++ {
		batch := bulkyBatch(b, 50)
		a, err := postEvents(ctx, client, url, batch)
		switch {
		case err != nil:
			t.Fatalf("publish: %v", err)
		case a.Status == http.StatusOK:
			answered += len(batch)
		default:
			wantOutage(t, a, "out of disk space")
			refused = batch
		}
	}
	if refused == nil {
		t.Fatal("the disk never filled up")
	}
	// Nothing of the refused batch was stored or counted.
	wantExact(t, url, answered)

	remount(t, dir, "size=64m")
	eventually(t, "the refused batch to be taken once the disk has room", 10*time.Second, func() error {
		a, err := postEvents(ctx, client, url, refused)
		if err == nil && a.Status != http.StatusOK {
			err = fmt.Errorf("%d: %s", a.Status, a.Error)
		}
		return err
	})
	wantExact(t, url, answered+len(refused))
}

// TestSQLiteReadOnlyAtStart: the file system under the store is read-only when the
// aggregator starts (a volume mounted ro, a disk the kernel turned read-only). Open fails
// with "the store is read-only", an outage that -start-timeout waits out: once the file
// system is writable again the aggregator comes up by itself, with what the file held.
// (A file system cannot be remounted read-only under a process that has the file open for
// writing, so the running case rests on the same diagnosis; see sqlite.TestErrorsAreClassified.)
func TestSQLiteReadOnlyAtStart(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, "64m")
	db := "sqlite:" + filepath.Join(dir, "uts.db")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}

	url, stop := startRun(t, "-db", db)
	first := bulkyBatch(0, 10)
	if a, err := postEvents(ctx, client, url, first); err != nil || a.Status != http.StatusOK {
		t.Fatalf("publish before the fault: %+v, %v", a, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}

	remount(t, dir, "ro")
	writable := make(chan struct{})
	go func() {
		defer close(writable)
		time.Sleep(time.Second) // the aggregator meanwhile finds the store read-only, and waits
		remount(t, dir, "rw")
	}()
	url, stop = startRun(t, "-db", db, "-start-timeout", "30s")
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("clean shutdown: %v", err)
		}
	})
	<-writable
	second := bulkyBatch(1, 10)
	if a, err := postEvents(ctx, client, url, second); err != nil || a.Status != http.StatusOK {
		t.Fatalf("publish once writable: %+v, %v", a, err)
	}
	wantExact(t, url, len(first)+len(second))
}
