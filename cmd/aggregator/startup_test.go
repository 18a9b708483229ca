package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
)

// runInBackground runs the aggregator through run, as main does, with its logs in logs.
func runInBackground(t *testing.T, logs *testenv.Buffer, args ...string) (errc <-chan error, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c <- run(ctx, args, noEnv, logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return within 30s of its cancel")
		}
	})
	return c, cancel
}

// viaProxy rewrites a URL to reach its host through p.
func viaProxy(t *testing.T, raw string, p *cutProxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// TestStartWaitsForPostgresAndRedis starts the aggregator while PostgreSQL and then Redis
// refuse every connection (each behind a proxy that resets it), as in a deployment whose
// services start together. It waits for each, and serves once both are reachable.
func TestStartWaitsForPostgresAndRedis(t *testing.T) {
	t.Parallel()
	db := testenv.PostgresSchema(t)
	redisURL := testenv.RedisURL(t)
	prefix := testenv.RedisPrefix(t, redisURL)
	pg := startCutProxy(t, postgresHost(t, db))
	pg.Cut()
	redisAddr, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rd := startCutProxy(t, redisAddr.Host)
	rd.Cut()

	logs := &testenv.Buffer{}
	addr := testenv.FreeAddr(t)
	errc, _ := runInBackground(t, logs, "-addr", addr, "-db", viaProxy(t, db, pg), "-broker", viaProxy(t, redisURL, rd),
		"-redis-prefix", prefix, "-start-timeout", "60s")
	running := func() {
		select {
		case err := <-errc:
			t.Fatalf("run exited while waiting for its services: %v\n%s", err, logs)
		default:
		}
	}
	waitForLog := func(what string) {
		eventually(t, "a log of "+what, 20*time.Second, func() error {
			running()
			if !strings.Contains(logs.String(), what) {
				return errors.New("not yet")
			}
			return nil
		})
	}

	waitForLog("the store unreachable at start; retrying")
	pg.Restore()
	waitForLog("the broker unreachable at start; retrying")
	if strings.Contains(logs.String(), "aggregator started") {
		t.Fatalf("started without Redis:\n%s", logs)
	}
	rd.Restore()
	eventually(t, "the aggregator to be ready", 30*time.Second, func() error {
		running()
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	resp, err := http.Post("http://"+addr+"/publish", "application/json",
		strings.NewReader(`{"topic":"start","event_id":"1","timestamp":"2026-11-25T10:00:00Z","source":"t","payload":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish answered %d, want 202", resp.StatusCode)
	}
	if s := waitDrained(t, "http://"+addr); s.Received != 1 || s.UniqueProcessed != 1 {
		t.Errorf("stats %+v, want the one event stored", s)
	}
}

// TestStartGivesUpAfterStartTimeout: with nothing ever listening, the aggregator exits
// after -start-timeout with an error naming what it waited for and the flag, having
// retried meanwhile.
func TestStartGivesUpAfterStartTimeout(t *testing.T) {
	t.Parallel()
	closed := testenv.FreeAddr(t) // nothing listens there
	for name, args := range map[string][]string{
		"the store":  {"-db", "postgres://root@" + closed + "/test?sslmode=disable"},
		"the broker": {"-db", "sqlite:" + filepath.Join(t.TempDir(), "uts.db"), "-broker", "redis://" + closed + "/0"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &testenv.Buffer{}
			errc, _ := runInBackground(t, logs, append([]string{"-addr", testenv.FreeAddr(t), "-start-timeout", "1500ms"}, args...)...)
			var err error
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second):
				t.Fatal("still running 30s after a -start-timeout of 1.5s")
			}
			if err == nil || !strings.Contains(err.Error(), name+" still unreachable after -start-timeout") {
				t.Fatalf("got %v, want %q still unreachable after -start-timeout", err, name)
			}
			if retries := strings.Count(logs.String(), "unreachable at start; retrying"); retries < 2 {
				t.Errorf("%d retries logged, want several:\n%s", retries, logs)
			}
		})
	}
}

// TestStartFailsAtOnceOnConfiguration: an error no wait can cure (a malformed URL, a
// database that does not exist) ends the start at once, with no retry, even under a long
// -start-timeout; and -start-timeout 0 never retries.
func TestStartFailsAtOnceOnConfiguration(t *testing.T) {
	t.Parallel()
	cases := map[string][]string{
		"a malformed URL":  {"-db", "postgres://root@127.0.0.1:1/test?sslmode=bogus", "-start-timeout", "10m"},
		"-start-timeout 0": {"-db", "postgres://root@" + testenv.FreeAddr(t) + "/test?sslmode=disable", "-start-timeout", "0"},
	}
	if base := os.Getenv("UTS_TEST_POSTGRES_URL"); base != "" {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/no_such_database_" + fmt.Sprint(time.Now().UnixNano())
		cases["no such database"] = []string{"-db", u.String(), "-start-timeout", "10m"}
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			logs := &testenv.Buffer{}
			errc, _ := runInBackground(t, logs, append([]string{"-addr", testenv.FreeAddr(t)}, args...)...)
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("run succeeded")
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running after 30s: it retries a configuration error\n%s", logs)
			}
			if strings.Contains(logs.String(), "retrying") {
				t.Errorf("retried a configuration error:\n%s", logs)
			}
		})
	}
}

// TestWorthRetryingAtStart pins the classification the drivers' errors get.
func TestWorthRetryingAtStart(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]bool{
		fakePgError("57P03"):                       true, // the database system is starting up
		fakePgError("08006"):                       true,
		fakePgError("28P01"):                       false, // wrong password
		fakePgError("3D000"):                       false, // no such database
		fakeRedisError("LOADING Redis is loading"): true,
		fakeRedisError("WRONGPASS invalid"):        false,
		uts.Unavailable("redis unavailable", fakeRedisError("NOAUTH Authentication required")): false,
		uts.Unavailable("redis unavailable", errors.New("dial tcp: refused")):                  true,
		fmt.Errorf("open: %w", context.DeadlineExceeded):                                       true,
		errors.New("postgres: parse the URL: bad"):                                             false,
	} {
		if got := worthRetryingAtStart(err); got != want {
			t.Errorf("worthRetryingAtStart(%v) = %v, want %v", err, got, want)
		}
	}
}

type fakePgError string

func (e fakePgError) Error() string    { return "SQLSTATE " + string(e) }
func (e fakePgError) SQLState() string { return string(e) }

type fakeRedisError string

func (e fakeRedisError) Error() string { return string(e) }
func (fakeRedisError) RedisError()     {}
