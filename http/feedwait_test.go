package http

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// getWithin sends GET path with the client's context bounded by limit: a wait that should
// have ended earlier fails the request instead of holding the test.
func (e *env) getWithin(limit time.Duration, path string) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return e.getCtx(ctx, path)
}

func (e *env) getCtx(ctx context.Context, path string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", e.server.URL+path, nil)
	if err != nil {
		return response{}, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// waitInSlot sends a waiting GET path until it is not refused for want of a slot: the
// probes of the cap that the test sends meanwhile hold slots for a moment too.
func (e *env) waitInSlot(ctx context.Context, path string) (response, error) {
	for {
		resp, err := e.getCtx(ctx, path)
		if err != nil || resp.status != http.StatusServiceUnavailable {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// linkQuery is the query of the Link header's URL.
func linkQuery(t *testing.T, resp response) url.Values {
	t.Helper()
	m := nextLink.FindStringSubmatch(resp.header.Get("Link"))
	if m == nil {
		t.Fatalf("Link %q is not <url>; rel=\"next\"", resp.header.Get("Link"))
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestWaitAnswersAtOnceWhenEventsExist(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("w", 0, 3))), http.StatusOK)
	// A wait of 60s that held the request would fail it at 20s.
	resp, err := e.getWithin(20*time.Second, "/events?topic=w&wait=60s")
	if err != nil {
		t.Fatalf("a wait for events that exist did not answer: %v", err)
	}
	mustStatus(t, resp, http.StatusOK)
	var got []uts.StoredEvent
	resp.decode(t, &got)
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	if q := linkQuery(t, resp); q.Get("after") != "3" || q.Get("wait") != "1m0s" {
		t.Errorf("Link query %v, want after=3, past the third event, and the same wait", q)
	}
}

// TestWaitWakesAtCommit: a request waiting past the last event answers as soon as a publish
// commits, with that event, long before its wait ends.
func TestWaitWakesAtCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxWaiting: 1})
	mustStatus(t, e.publish(mustJSON(t, events("w", 0, 1))), http.StatusOK)
	after := linkQuery(t, e.do("GET", "/events?topic=w&wait=1ms", nil)).Get("after")

	answered := make(chan response, 1)
	failed := make(chan error, 1)
	go func() {
		// The wait is 60s; the request fails at 20s, so only a wake-up can answer it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := e.waitInSlot(ctx, "/events?topic=w&wait=60s&after="+after)
		if err != nil {
			failed <- err
			return
		}
		answered <- resp
	}()
	// With one slot, a second waiting request is refused while the first one waits.
	waitFor(t, "the first request to wait", func() bool {
		return e.do("GET", "/events?wait=1ms", nil).status == http.StatusServiceUnavailable
	})
	mustStatus(t, e.publish(mustJSON(t, events("w", 1, 2))), http.StatusOK)
	select {
	case err := <-failed:
		t.Fatalf("the waiting request was not woken by the commit: %v", err)
	case resp := <-answered:
		mustStatus(t, resp, http.StatusOK)
		var got []uts.StoredEvent
		resp.decode(t, &got)
		if len(got) != 1 || got[0].EventID != "w-1" {
			t.Fatalf("the woken request answered %+v, want event w-1", got)
		}
		if q := linkQuery(t, resp); q.Get("after") == after || q.Get("wait") != "1m0s" {
			t.Errorf("Link query %v, want a cursor past %s and the same wait", q, after)
		}
	}
}

func TestWaitEndsEmptyWithTheSameCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("w", 0, 2))), http.StatusOK)
	after := linkQuery(t, e.do("GET", "/events?topic=w&wait=1ms", nil)).Get("after")

	resp := e.do("GET", "/events?topic=w&limit=5&wait=100ms&after="+after, nil)
	mustStatus(t, resp, http.StatusOK)
	if strings.TrimSpace(string(resp.body)) != "[]" {
		t.Fatalf("body %s, want []", resp.body)
	}
	q := linkQuery(t, resp)
	if q.Get("after") != after || q.Get("wait") != "100ms" || q.Get("topic") != "w" || q.Get("limit") != "5" {
		t.Errorf("Link query %v, want the same topic, limit, cursor %s and wait", q, after)
	}
}

func TestWaitParamRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, query := range []string{"wait=61s", "wait=2m", "wait=-1s", "wait=soon", "wait=1.5", "wait=30s&order=desc"} {
		resp := e.do("GET", "/events?"+query, nil)
		mustStatus(t, resp, http.StatusUnprocessableEntity)
		if !strings.Contains(string(resp.body), "wait") {
			t.Errorf("%s: error %s does not name wait", query, resp.body)
		}
	}
	// Accepted forms; an event exists, so each answers at once.
	mustStatus(t, e.publish(mustJSON(t, events("w", 0, 1))), http.StatusOK)
	for _, wait := range []string{"0", "30", "250ms", "60s"} {
		resp, err := e.getWithin(20*time.Second, "/events?wait="+wait)
		if err != nil || resp.status != http.StatusOK {
			t.Errorf("wait=%s: %v %d %s", wait, err, resp.status, resp.body)
		}
	}
}

// TestWaitCap: past MaxWaiting waiting requests the next one answers 503 with Retry-After at
// once, and a client that goes away gives its slot back.
func TestWaitCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxWaiting: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaver, leave := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	for _, c := range []context.Context{ctx, leaver} {
		go func() {
			_, _ = e.waitInSlot(c, "/events?wait=60s")
			done <- struct{}{}
		}()
	}
	var refused response
	waitFor(t, "two requests to wait and a third to be refused", func() bool {
		refused = e.do("GET", "/events?wait=1ms", nil)
		return refused.status == http.StatusServiceUnavailable
	})
	if refused.header.Get("Retry-After") == "" {
		t.Error("a 503 for the cap has no Retry-After")
	}
	if !strings.Contains(string(refused.body), "waiting") {
		t.Errorf("503 body %s does not say that too many requests wait", refused.body)
	}
	// A request that does not wait needs no slot.
	mustStatus(t, e.do("GET", "/events", nil), http.StatusOK)

	leave() // one client disconnects: its slot is free again, long before its wait would end
	<-done
	waitFor(t, "the slot of the client that left to be free", func() bool {
		return e.do("GET", "/events?wait=1ms", nil).status == http.StatusOK
	})
}
