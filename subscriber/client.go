package subscriber

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/baseurl"
)

// maxAnswerBytes bounds one answer read into memory: a page of 10,000 events of the largest
// size the aggregator accepts by default would not fit, but such a page is not what a
// follower asks for; the bound keeps a confused server from exhausting memory.
const maxAnswerBytes = 1 << 30

// Client talks to one or more aggregators' subscription API over HTTP. A request that got no
// answer moves on to the next URL (that replica may be down); an answer asking to come back
// later (5xx, 429, 503 with Retry-After) is waited out with backoff; any other 4xx is an
// error at once, since repeating the request cannot help. Every request it sends is safe to
// repeat: a read commits nothing, and committing a cursor twice is a no-op. It is safe for
// concurrent use.
type Client struct {
	urls   []string
	token  string
	http   *http.Client
	retry  RetryPolicy
	logger *slog.Logger
	next   atomic.Uint64 // round-robin position over urls

	// retries counts the attempts that were repeated, for the progress line.
	retries atomic.Int64
	// gaps counts the distinct Expired-Through values answers carried: each is retention
	// deleting events before this client read them. A gap spans every page read from below
	// it, so a value is counted, and logged, once.
	gaps         atomic.Int64
	lastGapMu    sync.Mutex
	lastGapValue string
	// sleep waits between attempts; tests replace it to see the waits without taking them.
	sleep func(ctx context.Context, d time.Duration) error
}

// ClientConfig sets up a Client.
type ClientConfig struct {
	URLs  []string // aggregators, used round-robin
	Token string   // bearer token for reading (the aggregator's -read-token)
	Retry RetryPolicy
	// HTTPClient may be nil for one with no overall timeout: a read that waits for events
	// sets its own deadline.
	HTTPClient *http.Client
	Logger     *slog.Logger // may be nil
}

// NewClient returns a client that spreads requests over cc.URLs round-robin.
func NewClient(cc ClientConfig) (*Client, error) {
	bases, err := baseurl.Parse(cc.URLs)
	if err != nil {
		return nil, err
	}
	if err := cc.Retry.validate(); err != nil {
		return nil, err
	}
	c := &Client{urls: bases, token: cc.Token, http: cc.HTTPClient, retry: cc.Retry, logger: cc.Logger, sleep: sleepContext}
	if c.http == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		// Pages are read on loopback or a LAN far more often than over a slow link, where
		// compressing megabytes of JSON costs the server more CPU than the bytes cost the wire.
		transport.DisableCompression = true
		c.http = &http.Client{Transport: transport}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Retries is how many attempts were repeated so far.
func (c *Client) Retries() int64 { return c.retries.Load() }

func (c *Client) noteGap(target, through string) {
	c.lastGapMu.Lock()
	defer c.lastGapMu.Unlock()
	if through == c.lastGapValue {
		return
	}
	c.lastGapValue = through
	c.gaps.Add(1)
	c.logger.Warn("retention deleted events before this subscription read them: the output has a gap",
		"url", target, "expired_through", through)
}

// Gaps is how many times so far the aggregator said that retention deleted events before
// this client read them (its Expired-Through header, each value counted once).
func (c *Client) Gaps() int64 { return c.gaps.Load() }

// Subscribe creates the subscription, or finds it when one with the same spec exists; a
// different spec under the name is a *StatusError 409.
func (c *Client) Subscribe(ctx context.Context, spec uts.SubscriptionSpec) (uts.Subscription, error) {
	topics := spec.Topics
	if topics == nil {
		topics = []string{}
	}
	body, err := json.Marshal(struct {
		Topics []string              `json:"topics"`
		Start  uts.SubscriptionStart `json:"start"`
	}{topics, spec.Start})
	if err != nil {
		return uts.Subscription{}, err
	}
	var sub uts.Subscription
	err = c.doJSON(ctx, http.MethodPut, subscriptionPath(spec.Name), body, 0, &sub)
	return sub, err
}

// Subscription reads one subscription, with its lag.
func (c *Client) Subscription(ctx context.Context, name string) (uts.Subscription, error) {
	var sub uts.Subscription
	err := c.doJSON(ctx, http.MethodGet, subscriptionPath(name), nil, 0, &sub)
	return sub, err
}

// Commit moves the subscription's committed cursor to cursor: every event up to it is
// handled. Reset allows moving it back.
func (c *Client) Commit(ctx context.Context, name string, cursor uts.Cursor, reset bool) (uts.Subscription, error) {
	body, err := json.Marshal(struct {
		Cursor uts.Cursor `json:"cursor"`
		Reset  bool       `json:"reset,omitempty"`
	}{cursor, reset})
	if err != nil {
		return uts.Subscription{}, err
	}
	var sub uts.Subscription
	err = c.doJSON(ctx, http.MethodPost, subscriptionPath(name)+"/commit", body, 0, &sub)
	return sub, err
}

// Page is one read of a subscription.
type Page struct {
	// Events are the events as the aggregator sent them, one JSON object each, compact and
	// carrying its own "cursor": exactly what a subscriber writes as an NDJSON line.
	Events []json.RawMessage `json:"events"`
	// Cursor is the last event's cursor, or where the read started when it found none.
	Cursor uts.Cursor `json:"cursor"`
}

// Read returns up to limit events of the subscription after its committed cursor, waiting
// up to wait for the first one when none is there yet. Reading commits nothing: the same
// read again returns the same events until they are committed.
func (c *Client) Read(ctx context.Context, name string, limit int, wait time.Duration) (Page, error) {
	return c.read(ctx, name, limit, wait, nil)
}

// read is Read reading the answer into buf when it fits: a follower reads page after page of
// megabytes, and a new buffer for each, zeroed, was work for the allocator and the
// collector. The page's events alias buf then, until the next read into it.
func (c *Client) read(ctx context.Context, name string, limit int, wait time.Duration, buf *[]byte) (Page, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(limit))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	path := subscriptionPath(name) + "/events?" + q.Encode()
	data, err := c.do(ctx, http.MethodGet, path, nil, wait, buf)
	if err != nil {
		return Page{}, err
	}
	page, err := parsePage(data)
	if err != nil {
		return Page{}, fmt.Errorf("%s %s: unreadable answer: %w", http.MethodGet, path, err)
	}
	return page, nil
}

// parsePage takes a read's answer apart without decoding its events: the subscriber writes
// each as it came, so it only needs where each begins and ends. json.Unmarshal into
// json.RawMessage values checked and scanned every byte twice, a fifth of the subscriber's
// CPU; this checks the answer once and splits it with the byte-level walker. The events
// alias data.
func parsePage(data []byte) (Page, error) {
	if !uts.ValidJSON(data) {
		return Page{}, errors.New("not JSON")
	}
	var events, cursor json.RawMessage
	uts.EachJSONMember(data, func(key []byte, value json.RawMessage) {
		switch string(key) {
		case "events":
			events = value
		case "cursor":
			cursor = value
		}
	})
	if len(events) == 0 || events[0] != '[' {
		return Page{}, errors.New(`no "events" array`)
	}
	var page Page
	if err := json.Unmarshal(cursor, &page.Cursor); err != nil {
		return Page{}, fmt.Errorf(`"cursor": %w`, err)
	}
	page.Events = uts.JSONArrayElements(events)
	for i, e := range page.Events {
		if e[0] != '{' {
			return Page{}, fmt.Errorf("event %d is not an object", i)
		}
		// A line must stay one line; json.Compact only runs on an answer that was indented.
		if bytes.IndexByte(e, '\n') >= 0 {
			var b bytes.Buffer
			if err := json.Compact(&b, e); err != nil {
				return Page{}, fmt.Errorf("event %d: %w", i, err)
			}
			page.Events[i] = b.Bytes()
		}
	}
	return page, nil
}

func subscriptionPath(name string) string { return "/subscriptions/" + url.PathEscape(name) }

// doJSON runs one request with retries and decodes a 2xx answer into into. A request that
// waits for events gets wait plus a margin before it counts as lost.
func (c *Client) doJSON(ctx context.Context, method, path string, body []byte, wait time.Duration, into any) error {
	data, err := c.do(ctx, method, path, body, wait, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// attemptTimeout is how long one attempt may take beyond the wait it asked the server for.
const attemptTimeout = 30 * time.Second

// do runs one request with retries and returns a 2xx answer's body, read into *buf when buf
// is not nil and the body fits in it (then *buf is the body) or a new slice.
func (c *Client) do(ctx context.Context, method, path string, body []byte, wait time.Duration, buf *[]byte) ([]byte, error) {
	target := c.next.Add(1) - 1
	for attempt := 1; ; attempt++ {
		base := c.urls[target%uint64(len(c.urls))]
		data, retryAfter, err := c.attempt(ctx, method, base+path, body, wait+attemptTimeout, buf)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var se *StatusError
		isStatus := errors.As(err, &se)
		if isStatus && !se.Temporary() {
			return nil, err
		}
		if !isStatus {
			target++ // no answer: try the next replica
		}
		if c.retry.MaxAttempts > 0 && attempt >= c.retry.MaxAttempts {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		d := c.retry.delay(attempt, retryAfter)
		c.retries.Add(1)
		c.logger.Warn("retrying", "method", method, "url", base+path, "attempt", attempt, "wait", d, "err", err)
		if err := c.sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

func (c *Client) attempt(ctx context.Context, method, target string, body []byte, timeout time.Duration, buf *[]byte) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "uts-subscriber")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	data, err := readAll(resp.Body, resp.ContentLength, buf)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: read answer: %w", method, target, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if through := resp.Header.Get("Expired-Through"); through != "" {
			c.noteGap(target, through)
		}
		return data, 0, nil
	}
	return nil, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), newStatusError(method, target, resp.StatusCode, data)
}

// readAll reads an answer in one allocation when its length is known, as a page's is, or
// in none when it fits in *reuse; a larger one becomes *reuse for the next read.
func readAll(r io.Reader, length int64, reuse *[]byte) ([]byte, error) {
	if length < 0 || length > maxAnswerBytes {
		return io.ReadAll(io.LimitReader(r, maxAnswerBytes))
	}
	var buf []byte
	switch {
	case reuse != nil && int64(cap(*reuse)) >= length:
		buf = (*reuse)[:length]
	case reuse != nil:
		buf = make([]byte, length)
		*reuse = buf
	default:
		buf = make([]byte, length)
	}
	_, err := io.ReadFull(r, buf)
	return buf, err
}
