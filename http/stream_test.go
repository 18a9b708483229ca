package http

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/uts-events/uts"
)

// sseMessage is one server-sent message, or a comment (comment set, nothing else).
type sseMessage struct {
	id, event, data, retry, comment string
}

// sseReader reads a stream's messages in a goroutine, so a test can wait for them bounded in
// time.
type sseReader struct {
	resp     *http.Response
	messages chan sseMessage
	cancel   context.CancelFunc
}

// openStream opens GET path with its own context, which the test's end cancels. headers
// are pairs: name, value, ...
func (e *env) openStream(path string, headers ...string) *sseReader {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", e.server.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", eventStream)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// The server's own client: the document-checking one reads bodies to their end.
	resp, err := e.server.Client().Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	s := &sseReader{resp: resp, messages: make(chan sseMessage, 1000), cancel: cancel}
	e.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return s
	}
	go func() {
		defer close(s.messages)
		sc := bufio.NewScanner(resp.Body)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch {
			case line == "":
				s.messages <- m
				m = sseMessage{}
			case name == "":
				s.messages <- sseMessage{comment: value}
			case name == "id":
				m.id = value
			case name == "event":
				m.event = value
			case name == "data":
				m.data = value
			case name == "retry":
				m.retry = value
			}
		}
	}()
	return s
}

// next is the next message that is not a comment.
func (s *sseReader) next(t *testing.T) sseMessage {
	t.Helper()
	for {
		select {
		case m, ok := <-s.messages:
			if !ok {
				t.Fatal("the stream ended")
			}
			if m.comment == "" {
				return m
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no message within 20s")
		}
	}
}

// nextEvent is the next event message, decoded.
func (s *sseReader) nextEvent(t *testing.T) (id string, ev uts.StoredEvent) {
	t.Helper()
	for {
		m := s.next(t)
		if m.data == "" {
			continue // retry:
		}
		if m.event != "event" {
			t.Errorf("message event %q, want event", m.event)
		}
		if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
			t.Fatalf("data %q: %v", m.data, err)
		}
		return m.id, ev
	}
}

// TestStreamSendsTheFeedThenFollowsIt: a stream sends the topic's stored events, each with its
// cursor as id and the JSON /events gives, and then the events published later, as they
// commit.
func TestStreamSendsTheFeedThenFollowsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("s", 0, 3))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("other", 0, 2))), http.StatusOK)
	var listed []json.RawMessage
	e.do("GET", "/events?topic=s", nil).decode(t, &listed)

	s := e.openStream("/events/stream?topic=s")
	if ct := s.resp.Header.Get("Content-Type"); ct != eventStream {
		t.Fatalf("Content-Type %q, want %s", ct, eventStream)
	}
	if m := s.next(t); m.retry == "" {
		t.Errorf("the first message is %+v, want a retry: field", m)
	}
	var ids []string
	for i := range 3 {
		id, _ := s.nextEvent(t)
		ids = append(ids, id)
		_ = i
	}
	// Compare the data as sent with /events' own JSON, byte for byte.
	s2 := e.openStream("/events/stream?topic=s&after=" + ids[0])
	s2.next(t) // retry:
	if m := s2.next(t); m.data != string(listed[1]) || m.id != ids[1] {
		t.Errorf("after=%s: message id %s data %s, want id %s data %s", ids[0], m.id, m.data, ids[1], listed[1])
	}

	mustStatus(t, e.publish(mustJSON(t, events("other", 2, 3))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("s", 3, 5))), http.StatusOK)
	for i := 3; i < 5; i++ {
		id, ev := s.nextEvent(t)
		if ev.Topic != "s" || ev.EventID != fmt.Sprintf("s-%d", i) {
			t.Fatalf("followed event %d is %s/%s, want s/s-%d", i, ev.Topic, ev.EventID, i)
		}
		if id == ids[len(ids)-1] {
			t.Errorf("event %d has the id %s of the one before", i, id)
		}
		ids = append(ids, id)
	}
}

func TestStreamOfSeveralTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.openStream("/events/stream?topic=a&topic=c")
	for _, topic := range []string{"a", "b", "c"} {
		mustStatus(t, e.publish(mustJSON(t, events(topic, 0, 1))), http.StatusOK)
	}
	for _, want := range []string{"a", "c"} {
		if _, ev := s.nextEvent(t); ev.Topic != want {
			t.Fatalf("event of topic %s, want %s", ev.Topic, want)
		}
	}
}

func TestStreamHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{streamHeartbeat: 20 * time.Millisecond})
	s := e.openStream("/events/stream")
	for beats := 0; beats < 2; {
		select {
		case m, ok := <-s.messages:
			if !ok {
				t.Fatal("the stream ended")
			}
			if m.comment == "heartbeat" {
				beats++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no heartbeat within 20s")
		}
	}
}

// TestStreamResumesFromLastEventID: a reconnecting EventSource sends the last id it saw; the
// stream goes on after it, whatever after= says. A malformed one is refused before any
// stream starts.
func TestStreamResumesFromLastEventID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("r", 0, 5))), http.StatusOK)
	s := e.openStream("/events/stream?topic=r")
	var ids []string
	for range 5 {
		id, _ := s.nextEvent(t)
		ids = append(ids, id)
	}
	resumed := e.openStream("/events/stream?topic=r&after="+ids[0], "Last-Event-ID", ids[2])
	if _, ev := resumed.nextEvent(t); ev.EventID != "r-3" {
		t.Fatalf("resumed after %s at %s, want r-3", ids[2], ev.EventID)
	}

	for _, bad := range []struct{ query, header, names string }{
		{"", "yesterday", "Last-Event-ID"},
		{"", "-1", "Last-Event-ID"},
		{"after=soon", "", "after"},
		{"after=18446744073709551615-1", "", "after"}, // well formed, but no cursor of this store
	} {
		var headers []string
		if bad.header != "" {
			headers = []string{"Last-Event-ID", bad.header}
		}
		resp := e.do("GET", "/events/stream?"+bad.query, nil, headers...)
		mustStatus(t, resp, http.StatusUnprocessableEntity)
		if !strings.Contains(string(resp.body), bad.names) {
			t.Errorf("%+v: error %s does not name %s", bad, resp.body, bad.names)
		}
	}
}

func TestStreamNeedsTheReadToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{readTokens: []string{"r"}})
	mustStatus(t, e.do("GET", "/events/stream", nil), http.StatusUnauthorized)
	s := e.openStream("/events/stream", "Authorization", "Bearer r")
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("with the read token: %d", s.resp.StatusCode)
	}
}

// TestStreamHoldsAWaitingSlot: a stream counts against the cap on waiting requests for as
// long as it lasts, and gives its slot back when the reader leaves.
func TestStreamHoldsAWaitingSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxWaiting: 1})
	s := e.openStream("/events/stream")
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", s.resp.StatusCode)
	}
	mustStatus(t, e.do("GET", "/events?wait=1ms", nil), http.StatusServiceUnavailable)
	refused := e.do("GET", "/events/stream", nil)
	mustStatus(t, refused, http.StatusServiceUnavailable)
	if refused.header.Get("Retry-After") == "" {
		t.Error("a 503 for the cap has no Retry-After")
	}
	s.cancel()
	waitFor(t, "the stream's slot to be free", func() bool {
		return e.do("GET", "/events?wait=1ms", nil).status == http.StatusOK
	})
}
