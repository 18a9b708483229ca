package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/baseurl"
)

// Client talks to one or more aggregators over HTTP and delivers at least once: a request
// that may not have been applied is repeated until it is answered 2xx, a terminal 4xx comes
// back, or the attempts run out. It is safe for concurrent use.
type Client struct {
	urls      []string
	token     string
	readToken string
	http      *http.Client
	retry     RetryPolicy
	logger    *slog.Logger
	next      atomic.Uint64 // round-robin position over urls
	failures  *failureClock // may be nil; hears of every attempt's outcome
	headers   requestHeaders

	// sleep waits between attempts; tests replace it to see the waits without taking them.
	sleep func(ctx context.Context, d time.Duration) error
}

// ClientConfig sets up a Client.
type ClientConfig struct {
	URLs      []string // aggregators, used round-robin
	Token     string   // bearer token for POST /publish
	ReadToken string   // bearer token for GET /stats; Token when empty
	Retry     RetryPolicy
	// HTTPClient may be nil for one with a 30 s timeout.
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
	c := &Client{urls: bases, token: cc.Token, readToken: cc.ReadToken, http: cc.HTTPClient,
		retry: cc.Retry, logger: cc.Logger, sleep: sleepContext}
	if c.readToken == "" {
		c.readToken = c.token
	}
	c.headers = newRequestHeaders(c.token, c.readToken)
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Reply is what delivering one request took and what the aggregator said. 200 carries
// Unique and Duplicates (committed); 202 carries Queued (Redis mode, committed later).
type Reply struct {
	Status     int `json:"-"`
	Received   int `json:"received"`
	Unique     int `json:"unique"`
	Duplicates int `json:"duplicates"`
	Queued     int `json:"queued"`

	Attempts int `json:"-"`
	// Latencies holds one round trip per attempt that got an answer.
	Latencies []time.Duration `json:"-"`
}

// Publish POSTs body (one event or a JSON array of them) to /publish. Even on error the
// Reply tells how many attempts were made.
func (c *Client) Publish(ctx context.Context, body []byte) (Reply, error) {
	var reply Reply
	answer, err := c.do(ctx, http.MethodPost, "/publish", body, &reply)
	if err != nil {
		return reply, err
	}
	reply.Status = answer.status
	// The answer's counts are informative; a 2xx we cannot parse is still a delivery.
	if readCounts(answer.body, &reply) {
		return reply, nil
	}
	if err := json.Unmarshal(answer.body, &reply); err != nil {
		c.logger.Warn("unreadable answer to a delivered request", "status", answer.status, "err", err)
	}
	return reply, nil
}

// readCounts reads the aggregator's usual answer to a committed publish,
// {"received":N,"unique":N,"duplicates":N} and a newline, into reply without encoding/json,
// whose reflection was a visible part of the publisher's CPU a request (issue #11). It
// returns false, having set nothing, for any other answer, which json.Unmarshal then reads.
func readCounts(body []byte, reply *Reply) bool {
	rest, received, ok := countField(body, `{"received":`)
	if !ok {
		return false
	}
	rest, unique, ok := countField(rest, `,"unique":`)
	if !ok {
		return false
	}
	rest, duplicates, ok := countField(rest, `,"duplicates":`)
	if !ok || string(rest) != "}\n" && string(rest) != "}" {
		return false
	}
	reply.Received, reply.Unique, reply.Duplicates = received, unique, duplicates
	return true
}

// countField reads prefix and the unsigned decimal after it, at most 9 digits.
func countField(b []byte, prefix string) ([]byte, int, bool) {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return nil, 0, false
	}
	b = b[len(prefix):]
	n, digits := 0, 0
	for digits < len(b) && digits < 10 && b[digits] >= '0' && b[digits] <= '9' {
		n = n*10 + int(b[digits]-'0')
		digits++
	}
	if digits == 0 || digits > 9 || digits > 1 && b[0] == '0' {
		return nil, 0, false
	}
	return b[digits:], n, true
}

// PublishEvents sends events as one JSON array.
func (c *Client) PublishEvents(ctx context.Context, events ...uts.Event) (Reply, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return Reply{}, fmt.Errorf("encode events: %w", err)
	}
	return c.Publish(ctx, body)
}

// Stats is the aggregator's GET /stats.
type Stats struct {
	uts.Counters
	// Topics is kept raw: verification needs only the counters.
	Topics        json.RawMessage `json:"topics"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	StartedAt     string          `json:"started_at"`
}

// Stats reads GET /stats, with the same retries as Publish.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	answer, err := c.do(ctx, http.MethodGet, "/stats", nil, &Reply{})
	if err != nil {
		return s, fmt.Errorf("read stats: %w", err)
	}
	if err := json.Unmarshal(answer.body, &s); err != nil {
		return s, fmt.Errorf("read stats: %w", err)
	}
	return s, nil
}

type answer struct {
	status int
	body   []byte
}

// maxAnswerBytes bounds the answer read: the API's answers are small, and a bigger one is
// not ours to hold.
const maxAnswerBytes = 1 << 20

// readAnswer reads an answer's body, at most maxAnswerBytes. A declared length is read into
// one buffer of that size: io.ReadAll's first 512 bytes and its growing were most of a
// small answer's cost.
func readAnswer(resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= maxAnswerBytes {
		data := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
}

// requestHeaders are the headers of the client's two kinds of request, built once in
// canonical form: setting them one by one on every request canonicalised each name and
// allocated each value again (issue #11: the publisher shares the machine it measures).
type requestHeaders struct {
	publish, read http.Header
}

func newRequestHeaders(token, readToken string) requestHeaders {
	h := requestHeaders{
		publish: http.Header{"Accept": {"application/json"}, "User-Agent": {"uts-publisher"}, "Content-Type": {"application/json"}},
		read:    http.Header{"Accept": {"application/json"}, "User-Agent": {"uts-publisher"}},
	}
	if token != "" {
		h.publish["Authorization"] = []string{"Bearer " + token}
	}
	if readToken != "" {
		h.read["Authorization"] = []string{"Bearer " + readToken}
	}
	return h
}

// do runs one request with retries, noting attempts and latencies in reply. A network error
// moves on to the next URL (that replica may be down); an error status stays with the
// replica that gave it, since it spoke and told us to come back.
func (c *Client) do(ctx context.Context, method, path string, body []byte, reply *Reply) (answer, error) {
	target := c.next.Add(1) - 1
	for attempt := 1; ; attempt++ {
		base := c.urls[target%uint64(len(c.urls))]
		start := time.Now()
		a, retryAfter, err := c.attempt(ctx, method, base+path, body)
		reply.Attempts = attempt
		if a.status != 0 {
			reply.Latencies = append(reply.Latencies, time.Since(start))
		}
		if err == nil {
			c.failures.succeeded()
			return a, nil
		}
		if ctx.Err() != nil {
			return a, fmt.Errorf("%s %s: %w", method, base+path, ctx.Err())
		}
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			return a, err
		}
		c.failures.failed(time.Now())
		if !errors.As(err, &se) {
			target++
		}
		if attempt >= c.retry.MaxAttempts {
			return a, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		wait := c.retry.delay(attempt, retryAfter)
		c.logger.Debug("retrying", "url", base+path, "attempt", attempt, "wait", wait, "err", err)
		if err := c.sleep(ctx, wait); err != nil {
			return a, fmt.Errorf("%s %s: %w", method, base+path, err)
		}
	}
}

func (c *Client) attempt(ctx context.Context, method, target string, body []byte) (answer, time.Duration, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return answer{}, 0, err
	}
	// Shared, not copied: neither net/http's client nor a RoundTripper changes a request's
	// headers (the race detector would catch one that did, in this package's tests).
	if method == http.MethodGet {
		req.Header = c.headers.read
	} else {
		req.Header = c.headers.publish
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, 0, err
	}
	defer resp.Body.Close()
	// An answer cut short is a network error: the request may or may not have been applied,
	// so it is sent again and the aggregator's deduplication absorbs the repeat.
	data, err := readAnswer(resp)
	if err != nil {
		return answer{}, 0, fmt.Errorf("read answer: %w", err)
	}
	a := answer{status: resp.StatusCode, body: data}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return a, 0, nil
	}
	return a, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), newStatusError(resp.StatusCode, data)
}
