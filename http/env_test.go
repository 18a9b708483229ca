package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/redis"
	"github.com/uts-events/uts/sqlite"
)

// env is the aggregator as a test sees it: the real handler over a SQLite file, the
// in-process broker and the consumer, behind an HTTP server on 127.0.0.1.
type env struct {
	t      *testing.T
	cfg    Config
	dbPath string
	store  *sqlite.Store
	broker uts.Broker
	server *httptest.Server
	client *http.Client

	consumeOnce sync.Once
	stopConsume context.CancelFunc
	consumed    chan error
	stopOnce    sync.Once
	closeOnce   sync.Once
}

type envOptions struct {
	publishTokens []string
	readTokens    []string
	limits        uts.Limits
	queueEvents   int
	// deferConsume leaves the broker without a consumer until startConsume, so its queue
	// fills up.
	deferConsume bool
	// redisURL, when set, puts the Redis broker in place of the in-process one.
	redisURL string
	// bodyTimeout and maxBodyMemory are Config's; zero takes its defaults.
	bodyTimeout   time.Duration
	maxBodyMemory int64
	// maxWaiting, streamHeartbeat and streamWriteTimeout set the Config fields of those names.
	maxWaiting         int
	streamHeartbeat    time.Duration
	streamWriteTimeout time.Duration
	// listener, when set, is the server's listener instead of one on 127.0.0.1:0.
	listener net.Listener
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dbPath: filepath.Join(t.TempDir(), "uts.db"), consumed: make(chan error, 1)}
	store, err := sqlite.Open(ctx, e.dbPath)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.store = store
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.broker = inproc.New(inproc.Options{QueueEvents: opts.queueEvents})
	if opts.redisURL != "" {
		// A key prefix of the test's own keeps parallel tests and earlier runs apart.
		prefix := testenv.RedisPrefix(t, opts.redisURL)
		rb, err := redis.Open(ctx, opts.redisURL, redis.Options{
			KeyPrefix: prefix, Consumer: "test", Block: 100 * time.Millisecond, Logger: logger,
			DeadLetter: store.DeadLetter,
		})
		if err != nil {
			t.Fatalf("open redis broker: %v", err)
		}
		// Closed before its keys are deleted: cleanups run last-in, first-out.
		t.Cleanup(func() { rb.Close() })
		e.broker = rb
	}
	e.cfg = Config{
		Store:         store,
		Broker:        e.broker,
		Limits:        opts.limits,
		Logger:        logger,
		PublishTokens: opts.publishTokens,
		ReadTokens:    opts.readTokens,
		BodyTimeout:   opts.bodyTimeout,
		MaxBodyMemory: opts.maxBodyMemory,
		MaxWaiting:    opts.maxWaiting,

		StreamHeartbeat:    opts.streamHeartbeat,
		StreamWriteTimeout: opts.streamWriteTimeout,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprintln(w, "# TYPE uts_up gauge\nuts_up 1")
		}),
	}
	e.server = httptest.NewUnstartedServer(NewHandler(e.cfg))
	if opts.listener != nil {
		e.server.Listener.Close()
		e.server.Listener = opts.listener
	}
	e.server.Start()
	e.client = &http.Client{
		Timeout:   60 * time.Second,
		Transport: &docCheckingTransport{t: t, doc: loadDoc(t), base: e.server.Client().Transport},
	}
	if !opts.deferConsume {
		e.startConsume()
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) startConsume() {
	e.consumeOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		e.stopConsume = cancel
		commit := consumer.New(e.store, e.cfg.Logger).Commit
		go func() { e.consumed <- e.broker.Consume(ctx, commit) }()
	})
}

// stop shuts down as the aggregator does: no more requests, drain the broker, close the store.
func (e *env) stop() {
	e.stopOnce.Do(func() {
		e.startConsume() // a request still waiting on the queue must be answered before Close returns
		e.server.Close()
		e.stopConsume()
		if err := <-e.consumed; err != nil {
			e.t.Errorf("consume: %v", err)
		}
		e.closeStore()
	})
}

func (e *env) closeStore() {
	e.closeOnce.Do(func() {
		if err := e.store.Close(); err != nil {
			e.t.Errorf("close store: %v", err)
		}
	})
}

// reopen stops everything and opens the store file afresh, as after a restart.
func (e *env) reopen() *sqlite.Store {
	e.t.Helper()
	e.stop()
	store, err := sqlite.Open(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatalf("reopen store: %v", err)
	}
	e.t.Cleanup(func() { store.Close() })
	return store
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request and reads the whole answer. headers are pairs: name, value, ...
func (e *env) do(method, path string, body []byte, headers ...string) response {
	e.t.Helper()
	resp, err := e.send(method, path, body, headers...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// send is do for goroutines other than the test's: it returns the error instead.
func (e *env) send(method, path string, body []byte, headers ...string) (response, error) {
	req, err := http.NewRequest(method, e.server.URL+path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body == nil {
		req.Body = nil
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (e *env) publish(body []byte, headers ...string) response {
	e.t.Helper()
	return e.do("POST", "/publish", body, append([]string{"Content-Type", "application/json"}, headers...)...)
}

func (e *env) stats(headers ...string) statsAnswer {
	e.t.Helper()
	resp := e.do("GET", "/stats", nil, headers...)
	if resp.status != http.StatusOK {
		e.t.Fatalf("GET /stats: %d %s", resp.status, resp.body)
	}
	var s statsAnswer
	resp.decode(e.t, &s)
	return s
}

func mustStatus(t testing.TB, resp response, want int) {
	t.Helper()
	if resp.status != want {
		t.Fatalf("status %d, want %d; body %s", resp.status, want, resp.body)
	}
}

// event builds a valid event; payload defaults to {"n": i}.
func event(topic string, i int) map[string]any {
	return map[string]any{
		"topic":     topic,
		"event_id":  fmt.Sprintf("%s-%d", topic, i),
		"timestamp": time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339),
		"source":    "test",
		"payload":   map[string]any{"n": i},
	}
}

func events(topic string, from, to int) []map[string]any {
	var evs []map[string]any
	for i := from; i < to; i++ {
		evs = append(evs, event(topic, i))
	}
	return evs
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond, bounded in time: it is a wait for a state, not a timed assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, what, 20*time.Second, 5*time.Millisecond, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
