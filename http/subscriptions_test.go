package http

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// subscriptionAnswer is a subscription as a client decodes it; Lag is nil where absent.
type subscriptionAnswer struct {
	Name      string    `json:"name"`
	Topics    []string  `json:"topics"`
	Start     string    `json:"start"`
	Cursor    string    `json:"cursor"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Lag       *int64    `json:"lag"`
}

type subscriptionEventsAnswer struct {
	Events []struct {
		Topic   string          `json:"topic"`
		EventID string          `json:"event_id"`
		Payload json.RawMessage `json:"payload"`
		Cursor  string          `json:"cursor"`
	} `json:"events"`
	Cursor string `json:"cursor"`
}

func (a subscriptionEventsAnswer) ids() []string {
	ids := []string{}
	for _, ev := range a.Events {
		ids = append(ids, ev.EventID)
	}
	return ids
}

func (e *env) putSubscription(name, body string, want int) subscriptionAnswer {
	e.t.Helper()
	resp := e.do("PUT", "/subscriptions/"+name, []byte(body), "Content-Type", "application/json")
	mustStatus(e.t, resp, want)
	var sub subscriptionAnswer
	if want < 300 {
		resp.decode(e.t, &sub)
	}
	return sub
}

func (e *env) getSubscription(name string) subscriptionAnswer {
	e.t.Helper()
	resp := e.do("GET", "/subscriptions/"+name, nil)
	mustStatus(e.t, resp, http.StatusOK)
	var sub subscriptionAnswer
	resp.decode(e.t, &sub)
	return sub
}

func (e *env) readSubscription(name, query string) subscriptionEventsAnswer {
	e.t.Helper()
	resp := e.do("GET", "/subscriptions/"+name+"/events"+query, nil)
	mustStatus(e.t, resp, http.StatusOK)
	var got subscriptionEventsAnswer
	resp.decode(e.t, &got)
	return got
}

func (e *env) commit(name, body string) response {
	e.t.Helper()
	return e.do("POST", "/subscriptions/"+name+"/commit", []byte(body), "Content-Type", "application/json")
}

func lagOf(t *testing.T, sub subscriptionAnswer) int64 {
	t.Helper()
	if sub.Lag == nil {
		t.Fatalf("subscription %s has no lag", sub.Name)
	}
	return *sub.Lag
}

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 5))), http.StatusOK)
	mustStatus(t, e.publish(mustJSON(t, events("other", 0, 3))), http.StatusOK)

	sub := e.putSubscription("billing", `{"topics": ["orders", "orders"], "start": "earliest"}`, http.StatusCreated)
	if sub.Name != "billing" || !slices.Equal(sub.Topics, []string{"orders"}) || sub.Start != "earliest" || sub.Cursor != "0" || lagOf(t, sub) != 5 {
		t.Fatalf("created %+v, want billing on [orders] from earliest at 0 with lag 5", sub)
	}
	// The same body again finds it; another is refused.
	again := e.putSubscription("billing", `{"start": "earliest", "topics": ["orders"]}`, http.StatusOK)
	if !again.CreatedAt.Equal(sub.CreatedAt) {
		t.Errorf("the same PUT made a new subscription: created %v, then %v", sub.CreatedAt, again.CreatedAt)
	}
	e.putSubscription("billing", `{"topics": ["orders", "other"]}`, http.StatusConflict)
	e.putSubscription("billing", `{"topics": ["orders"], "start": "latest"}`, http.StatusConflict)
	if got := e.getSubscription("billing"); !slices.Equal(got.Topics, []string{"orders"}) || got.Start != "earliest" {
		t.Fatalf("a refused PUT changed the subscription: %+v", got)
	}

	// Reading commits nothing: the same events come until a commit.
	first := e.readSubscription("billing", "?limit=2")
	if ids := first.ids(); !slices.Equal(ids, []string{"orders-0", "orders-1"}) {
		t.Fatalf("first read %v, want orders-0, orders-1", ids)
	}
	if first.Cursor != first.Events[1].Cursor || first.Events[0].Cursor == first.Events[1].Cursor {
		t.Fatalf("cursors: events %s, %s; answer %s", first.Events[0].Cursor, first.Events[1].Cursor, first.Cursor)
	}
	if string(first.Events[0].Payload) != `{"n":0}` {
		t.Errorf("payload %s, want {\"n\":0}", first.Events[0].Payload)
	}
	if ids := e.readSubscription("billing", "?limit=2").ids(); !slices.Equal(ids, []string{"orders-0", "orders-1"}) {
		t.Fatalf("read without a commit gave %v, want the same events again", ids)
	}

	resp := e.commit("billing", `{"cursor": "`+first.Cursor+`"}`)
	mustStatus(t, resp, http.StatusOK)
	var committed subscriptionAnswer
	resp.decode(t, &committed)
	if committed.Cursor != first.Cursor || committed.Lag != nil {
		t.Fatalf("commit answered %+v, want cursor %s and no lag", committed, first.Cursor)
	}
	// Committing it again changes nothing.
	mustStatus(t, e.commit("billing", `{"cursor": "`+first.Cursor+`"}`), http.StatusOK)
	rest := e.readSubscription("billing", "")
	if ids := rest.ids(); !slices.Equal(ids, []string{"orders-2", "orders-3", "orders-4"}) {
		t.Fatalf("after the commit read %v, want orders-2..4", ids)
	}
	if got := e.getSubscription("billing"); got.Cursor != first.Cursor || lagOf(t, got) != 3 {
		t.Fatalf("after the commit: %+v, want cursor %s, lag 3", got, first.Cursor)
	}

	// Backwards is refused, unless reset.
	mustStatus(t, e.commit("billing", `{"cursor": "`+rest.Cursor+`"}`), http.StatusOK)
	back := e.commit("billing", `{"cursor": "`+first.Cursor+`"}`)
	mustStatus(t, back, http.StatusConflict)
	if !strings.Contains(string(back.body), "reset") {
		t.Errorf("409 %s does not say how to move back", back.body)
	}
	if got := e.getSubscription("billing"); got.Cursor != rest.Cursor || lagOf(t, got) != 0 {
		t.Fatalf("a refused commit moved the cursor: %+v, want %s", got, rest.Cursor)
	}
	mustStatus(t, e.commit("billing", `{"cursor": "0", "reset": true}`), http.StatusOK)
	if ids := e.readSubscription("billing", "?limit=1").ids(); !slices.Equal(ids, []string{"orders-0"}) {
		t.Fatalf("after a reset to 0 read %v, want orders-0", ids)
	}

	// A subscription of every topic; the list is sorted by name, each with its lag.
	all := e.putSubscription("audit", ``, http.StatusCreated)
	if len(all.Topics) != 0 || all.Start != "earliest" || lagOf(t, all) != 8 {
		t.Fatalf("created %+v, want every topic from earliest with lag 8", all)
	}
	resp = e.do("GET", "/subscriptions", nil)
	mustStatus(t, resp, http.StatusOK)
	var list struct {
		Subscriptions []subscriptionAnswer `json:"subscriptions"`
	}
	resp.decode(t, &list)
	if len(list.Subscriptions) != 2 || list.Subscriptions[0].Name != "audit" || list.Subscriptions[1].Name != "billing" ||
		lagOf(t, list.Subscriptions[0]) != 8 || lagOf(t, list.Subscriptions[1]) != 5 {
		t.Fatalf("list %+v, want audit (lag 8), billing (lag 5)", list.Subscriptions)
	}

	resp = e.do("DELETE", "/subscriptions/billing", nil)
	mustStatus(t, resp, http.StatusNoContent)
	mustStatus(t, e.do("GET", "/subscriptions/billing", nil), http.StatusNotFound)
	mustStatus(t, e.do("DELETE", "/subscriptions/billing", nil), http.StatusNotFound)
	// The name is free again, for another body.
	e.putSubscription("billing", `{"topics": ["other"]}`, http.StatusCreated)
}

func TestSubscriptionStartsLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 3))), http.StatusOK)
	sub := e.putSubscription("tail", `{"start": "latest"}`, http.StatusCreated)
	if sub.Cursor == "0" || lagOf(t, sub) != 0 {
		t.Fatalf("latest subscription %+v, want a cursor past the 3 events and lag 0", sub)
	}
	empty := e.readSubscription("tail", "")
	if len(empty.Events) != 0 || empty.Cursor != sub.Cursor {
		t.Fatalf("read %v with cursor %s, want nothing and the committed cursor %s", empty.ids(), empty.Cursor, sub.Cursor)
	}
	mustStatus(t, e.publish(mustJSON(t, events("orders", 3, 4))), http.StatusOK)
	if ids := e.readSubscription("tail", "").ids(); !slices.Equal(ids, []string{"orders-3"}) {
		t.Fatalf("read %v, want only the event published after the creation", ids)
	}
}

// TestSubscriptionWaits: a read with wait= that finds nothing answers when an event is
// committed, long before its wait ends; one that nothing wakes answers empty.
func TestSubscriptionWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.putSubscription("follower", `{"topics": ["orders"]}`, http.StatusCreated)

	quiet := e.readSubscription("follower", "?wait=50ms")
	if len(quiet.Events) != 0 || quiet.Cursor != "0" {
		t.Fatalf("a wait with nothing to read gave %v, cursor %s", quiet.ids(), quiet.Cursor)
	}

	type result struct {
		resp response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.send("GET", "/subscriptions/follower/events?wait=30s", nil)
		done <- result{resp, err}
	}()
	// Events of another topic do not end the wait with an empty answer for this one.
	time.Sleep(100 * time.Millisecond)
	mustStatus(t, e.publish(mustJSON(t, events("other", 0, 1))), http.StatusOK)
	time.Sleep(100 * time.Millisecond)
	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 1))), http.StatusOK)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		mustStatus(t, r.resp, http.StatusOK)
		var got subscriptionEventsAnswer
		r.resp.decode(t, &got)
		if ids := got.ids(); !slices.Equal(ids, []string{"orders-0"}) {
			t.Fatalf("the waiting read gave %v, want orders-0", ids)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting read did not answer when an event was committed")
	}
}

// TestSubscriptionBadInput: every bad request is refused with its status, names the field at
// fault where it is a 422, and changes nothing.
func TestSubscriptionBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mustStatus(t, e.publish(mustJSON(t, events("orders", 0, 3))), http.StatusOK)
	e.putSubscription("billing", `{"topics": ["orders"]}`, http.StatusCreated)
	page := e.readSubscription("billing", "?limit=1")
	mustStatus(t, e.commit("billing", `{"cursor": "`+page.Cursor+`"}`), http.StatusOK)
	before := e.getSubscription("billing")

	long := strings.Repeat("x", 129)
	for _, c := range []struct {
		method, path, body string
		status             int
		field              string // for 422s
	}{
		{"PUT", "/subscriptions/bad%20name", `{}`, 422, "name"},
		{"PUT", "/subscriptions/" + long, `{}`, 422, "name"},
		{"GET", "/subscriptions/bad%21", ``, 422, "name"},
		{"DELETE", "/subscriptions/bad%21", ``, 422, "name"},
		{"GET", "/subscriptions/bad%21/events", ``, 422, "name"},
		{"POST", "/subscriptions/bad%21/commit", `{"cursor": "1"}`, 422, "name"},
		{"PUT", "/subscriptions/new", `{"topics": [`, 400, ""},
		{"PUT", "/subscriptions/new", `{"topics": "orders"}`, 422, "topics"},
		{"PUT", "/subscriptions/new", `{"topics": [""]}`, 422, "topics[0]"},
		{"PUT", "/subscriptions/new", `{"start": "now"}`, 422, "start"},
		{"PUT", "/subscriptions/new", `{"start": 1}`, 422, "start"},
		{"PUT", "/subscriptions/new", `{"topic": ["orders"]}`, 422, "topic"},
		{"PUT", "/subscriptions/new", `["orders"]`, 422, "body"},
		{"PUT", "/subscriptions/billing", `{"topics": ["other"]}`, 409, ""},
		{"GET", "/subscriptions/nobody", ``, 404, ""},
		{"DELETE", "/subscriptions/nobody", ``, 404, ""},
		{"GET", "/subscriptions/nobody/events", ``, 404, ""},
		{"POST", "/subscriptions/nobody/commit", `{"cursor": "1"}`, 404, ""},
		{"GET", "/subscriptions/billing/events?limit=0", ``, 422, "limit"},
		{"GET", "/subscriptions/billing/events?wait=2m", ``, 422, "wait"},
		{"GET", "/subscriptions/billing/events?wait=soon", ``, 422, "wait"},
		{"POST", "/subscriptions/billing/commit", `not json`, 400, ""},
		{"POST", "/subscriptions/billing/commit", `{}`, 422, "cursor"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": 2}`, 422, "cursor"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": "-1"}`, 422, "cursor"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": "abc"}`, 422, "cursor"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": "7-2"}`, 422, "cursor"}, // a PostgreSQL cursor on SQLite
		{"POST", "/subscriptions/billing/commit", `{"cursor": "999"}`, 422, "cursor"}, // past every event
		{"POST", "/subscriptions/billing/commit", `{"cursor": "0", "reset": "yes"}`, 422, "reset"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": "3", "again": true}`, 422, "again"},
		{"POST", "/subscriptions/billing/commit", `{"cursor": "0"}`, 409, ""}, // backwards
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		resp := e.do(c.method, c.path, body, "Content-Type", "application/json")
		if resp.status != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, resp.status, resp.body, c.status)
			continue
		}
		if c.status == 422 {
			var got errorBody
			resp.decode(t, &got)
			if len(got.Details) == 0 || got.Details[0].Field != c.field {
				t.Errorf("%s %s %s: details %+v, want field %q", c.method, c.path, c.body, got.Details, c.field)
			}
		}
	}
	after := e.getSubscription("billing")
	if after.Cursor != before.Cursor || !after.UpdatedAt.Equal(before.UpdatedAt) || !slices.Equal(after.Topics, before.Topics) {
		t.Errorf("bad requests changed the subscription: %+v, was %+v", after, before)
	}
	resp := e.do("GET", "/subscriptions", nil)
	var list struct {
		Subscriptions []subscriptionAnswer `json:"subscriptions"`
	}
	resp.decode(t, &list)
	if len(list.Subscriptions) != 1 {
		t.Errorf("bad requests created subscriptions: %+v", list.Subscriptions)
	}
	// The name rule is spelled out for the client.
	resp = e.do("PUT", "/subscriptions/a:b", []byte(`{}`))
	if !strings.Contains(string(resp.body), "A-Z, a-z, 0-9") {
		t.Errorf("a bad name's error %s does not say what a name is", resp.body)
	}
}

// TestSubscriptionsNeedTheReadToken: every /subscriptions route is behind the read tokens.
func TestSubscriptionsNeedTheReadToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{publishTokens: []string{"pub"}, readTokens: []string{"read"}})
	for _, c := range []struct {
		method, path, body string
		status             int // with the read token
	}{
		{"PUT", "/subscriptions/s", `{}`, http.StatusCreated},
		{"GET", "/subscriptions/s", ``, http.StatusOK},
		{"GET", "/subscriptions", ``, http.StatusOK},
		{"GET", "/subscriptions/s/events", ``, http.StatusOK},
		{"POST", "/subscriptions/s/commit", `{"cursor": "0"}`, http.StatusOK},
		{"DELETE", "/subscriptions/s", ``, http.StatusNoContent},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		for _, auth := range []string{"", "Bearer pub", "Bearer read-"} {
			if resp := e.do(c.method, c.path, body, "Authorization", auth); resp.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: %d, want 401", c.method, c.path, auth, resp.status)
			}
		}
		if resp := e.do(c.method, c.path, body, "Authorization", "Bearer read"); resp.status != c.status {
			t.Errorf("%s %s with the read token: %d %s, want %d", c.method, c.path, resp.status, resp.body, c.status)
		}
	}
}
