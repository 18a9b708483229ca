// Package http serves the aggregator's HTTP API: publishing, reading events and stats,
// health, the OpenAPI document with its embedded Swagger UI, and the live dashboard.
// Handlers and middleware are plain functions over the domain interfaces; NewHandler wires
// them into one handler.
package http

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/swaggest/swgui/v5emb"

	"github.com/uts-events/uts"
)

// Config is everything the handler needs. Store, Broker and Limits are required in practice;
// the rest have defaults.
type Config struct {
	Store  uts.Store
	Broker uts.Broker
	// Limits bound one request; zero fields take uts.DefaultLimits.
	Limits uts.Limits
	Logger *slog.Logger
	// StartedAt is the process start, for /stats; zero means when NewHandler was called.
	StartedAt time.Time
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// PublishTokens, when non-empty, are the bearer tokens that may POST /publish.
	PublishTokens []string
	// ReadTokens, when non-empty, are the bearer tokens that may read /events, /stats and
	// /metrics, and use /subscriptions: a subscriber is a reader, its commits only its own
	// bookmark.
	ReadTokens []string
	// Metrics, when set, is served at GET /metrics behind the read tokens.
	Metrics http.Handler
	// Commits, when set, reports an error while the consumer's latest commits to the store
	// fail (consumer.Consumer.Ready): a store can answer pings while every write times out,
	// and /readyz answers 503 then too.
	Commits func() error
	// MaxWaiting caps the requests waiting for events at once (wait=, event streams); past
	// it they answer 503. Zero means 1000.
	MaxWaiting int
	// BodyTimeout bounds how long a client may take to send a /publish body; zero means 30s.
	BodyTimeout time.Duration
	// MaxBodyMemory caps the request-body bytes held at once across all requests; past it
	// /publish answers 503. Zero means 256 MiB.
	MaxBodyMemory int64
	// StreamHeartbeat is how often an idle event stream sends a comment; zero means 15s.
	StreamHeartbeat time.Duration
	// StreamWriteTimeout bounds how long one page of an event stream may take to reach its
	// reader, who is dropped past it; zero means 30s.
	StreamWriteTimeout time.Duration
	// Shutdown, when closed, ends the waits and event streams at once, so that they do not
	// hold a graceful shutdown (http.Server.RegisterOnShutdown can close it).
	Shutdown <-chan struct{}
	// StoreTimeout bounds each store call a request makes; a call past it answers 503 "the
	// store timed out". Zero means 30 s; negative, no bound.
	StoreTimeout time.Duration
}

// route is one (method, path) the API answers. The table is the single list of routes, so
// the OpenAPI test can check the document against exactly what is served.
type route struct {
	method  string
	path    string
	handler http.Handler
}

// NewHandler returns the aggregator's API.
func NewHandler(cfg Config) http.Handler {
	cfg = withDefaults(cfg)
	// Each route goes into two muxes: serving routes every request once, and api, the
	// same routes alone, is asked only for requests none matches (unmatchedRoute).
	api, serving := http.NewServeMux(), http.NewServeMux()
	for _, rt := range routes(cfg) {
		pattern := rt.method + " " + rt.path
		handler := rt.handler
		if allowed, ok := queryParams[pattern]; ok {
			handler = onlyParams(cfg.Logger, allowed, handler)
		}
		api.Handle(rt.method+" "+muxPath(rt.path), handler)
		serving.Handle(rt.method+" "+muxPath(rt.path), handler)
	}
	// Every route is more specific than "/", so the mux picks it only when none matches.
	serving.Handle("/", unmatchedRoute(api))
	return logRequests(cfg.Logger, recoverPanics(cfg.Logger, serving))
}

func routes(cfg Config) []route {
	publishAuth := requireBearer(cfg.PublishTokens)
	readAuth := requireBearer(cfg.ReadTokens)
	ready := handleReady(cfg.Store, cfg.Commits, cfg.Broker)
	waiting := newWaitSlots(cfg.MaxWaiting) // shared by every route that waits for events
	docs := v5emb.New("UTS Event System", "/openapi.json", "/docs/")
	rts := []route{
		{"POST", "/publish", publishAuth(handlePublish(cfg.Broker, cfg.Limits, newBodyReader(cfg), cfg.Logger))},
		{"GET", "/events", readAuth(handleEvents(cfg.Store, waiting, cfg.Shutdown, cfg.Logger))},
		{"GET", "/events/stream", readAuth(handleEventStream(cfg.Store, waiting,
			streamConfig{heartbeat: cfg.StreamHeartbeat, writeWindow: cfg.StreamWriteTimeout, shutdown: cfg.Shutdown}, cfg.Logger))},
		{"PUT", "/subscriptions/{name}", readAuth(handlePutSubscription(cfg.Store, cfg.Logger))},
		{"GET", "/subscriptions/{name}", readAuth(handleGetSubscription(cfg.Store, cfg.Logger))},
		{"DELETE", "/subscriptions/{name}", readAuth(handleDeleteSubscription(cfg.Store, cfg.Logger))},
		{"GET", "/subscriptions/{name}/events", readAuth(handleSubscriptionEvents(cfg.Store, waiting, cfg.Shutdown, cfg.Logger))},
		{"POST", "/subscriptions/{name}/commit", readAuth(handleCommitSubscription(cfg.Store, cfg.Logger))},
		{"GET", "/subscriptions", readAuth(handleListSubscriptions(cfg.Store, cfg.Logger))},
		{"GET", "/stats", readAuth(handleStats(cfg.Store, cfg.Broker, cfg.StartedAt, cfg.Now, cfg.Logger))},
		{"GET", "/healthz", handleLive()},
		{"GET", "/readyz", ready},
		{"GET", "/health", ready},
		{"GET", "/openapi.json", handleOpenAPI()},
		// The page lives at /docs/ so that its relative asset paths resolve; /docs serves it too.
		{"GET", "/docs", docs},
		{"GET", "/docs/", docs},
		// The dashboard page is public: it holds no data, and its data calls carry the read token.
		{"GET", "/", handleDashboard()},
		{"GET", "/dashboard/{file}", handleDashboardAsset()},
	}
	if cfg.Metrics != nil {
		rts = append(rts, route{"GET", "/metrics", readAuth(cfg.Metrics)})
	}
	return rts
}

// queryParams lists, for each API route, every query parameter it takes: any other is
// answered 422 rather than ignored, so that a misspelt limit or topic is not silently a
// different query. The OpenAPI test checks each list against the document. Routes not
// listed (the dashboard, the docs, health, metrics) check nothing: browsers and Swagger UI
// may add parameters of their own.
var queryParams = map[string][]string{
	"POST /publish":      {"results"},
	"GET /events":        {"topic", "limit", "offset", "after", "before", "order", "wait"},
	"GET /events/stream": {"topic", "after"},
	"GET /stats":         {},

	"PUT /subscriptions/{name}":         {},
	"GET /subscriptions/{name}":         {},
	"DELETE /subscriptions/{name}":      {},
	"GET /subscriptions/{name}/events":  {"limit", "wait"},
	"POST /subscriptions/{name}/commit": {},
	"GET /subscriptions":                {},
}

// muxPath is the ServeMux pattern for a documented path. A pattern ending in "/" would match
// every path below it, so the root is pinned to exactly "/" and unknown paths still get 404.
func muxPath(path string) string {
	if path == "/" {
		return "/{$}"
	}
	return path
}

func withDefaults(cfg Config) Config {
	switch {
	case cfg.StoreTimeout == 0:
		cfg.Store = boundedStore{Store: cfg.Store, limit: defaultStoreTimeout}
	case cfg.StoreTimeout > 0:
		cfg.Store = boundedStore{Store: cfg.Store, limit: cfg.StoreTimeout}
	}
	def := uts.DefaultLimits()
	if cfg.Limits.MaxBodyBytes <= 0 {
		cfg.Limits.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.Limits.MaxBatchEvents <= 0 {
		cfg.Limits.MaxBatchEvents = def.MaxBatchEvents
	}
	if cfg.Limits.MaxEventBytes <= 0 {
		cfg.Limits.MaxEventBytes = def.MaxEventBytes
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = defaultBodyTimeout
	}
	if cfg.MaxBodyMemory <= 0 {
		cfg.MaxBodyMemory = defaultMaxBodyMemory
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StreamHeartbeat <= 0 {
		cfg.StreamHeartbeat = defaultHeartbeat
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = defaultStreamWriteWindow
	}
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = cfg.Now()
	}
	return cfg
}
