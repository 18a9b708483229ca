// Command aggregator serves the UTS Event System API: it validates published events, hands
// them to the consumer through a broker, and stores each (topic, event_id) once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/consumer"
	"github.com/uts-events/uts/http"
	"github.com/uts-events/uts/inproc"
	"github.com/uts-events/uts/metrics"
	"github.com/uts-events/uts/postgres"
	"github.com/uts-events/uts/redis"
	"github.com/uts-events/uts/sqlite"
)

func main() {
	// The heap is small and short-lived (request bodies and batches), so the default GOGC
	// spends a tenth of the CPU on collection; 400 trades a few MiB for it. GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled, then stops accepting, drains the queue, commits and
// closes.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h asked for the usage, which is printed: a success
	}
	if err != nil {
		return err
	}
	if cfg.Probe != "" {
		return probe(ctx, cfg.Probe)
	}
	// Request bodies that were let go are garbage, which GOGC=400 lets grow to four times
	// what is live: slow clients cycling through the body budget took the heap far past it.
	// A soft limit of the budget plus room for the rest makes the collector run first. It
	// bounds nothing by force, and GOMEMLIMIT still wins.
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.MaxBodyMemory + memoryBesideBodies)
	}
	logger := newLogger(cfg, stdout)

	// The store prunes no delivery that an entry still in the Redis stream may need; the
	// broker, which knows that, opens after the store, which it needs.
	var redisBroker atomic.Pointer[redis.Broker]
	deliveriesHeld := func(ctx context.Context) (time.Time, error) {
		if b := redisBroker.Load(); b != nil {
			return b.OldestEntry(ctx)
		}
		return time.Time{}, nil
	}
	// PostgreSQL and Redis may still be starting: wait for them, up to -start-timeout.
	startDeadline := time.Now().Add(cfg.StartTimeout)
	store, err := openRetrying(ctx, startDeadline, "the store", logger, func(ctx context.Context) (uts.Store, error) {
		return openStore(ctx, cfg.DB, deliveriesHeld, logger)
	})
	if err != nil {
		return err
	}
	defer store.Close()

	// The metrics hear of events where they pass (publish, commit, dead letter) and of
	// requests around the API, so no other package needs to know Prometheus.
	meters := metrics.New()
	broker, err := openRetrying(ctx, startDeadline, "the broker", logger, func(ctx context.Context) (uts.Broker, error) {
		return openBroker(ctx, cfg, meters.DeadLetters(store.DeadLetter), logger)
	})
	if err != nil {
		return err
	}
	// In Redis mode received counts a batch from its 202 on, not from its commit.
	answers := store
	if r, ok := broker.(*redis.Broker); ok {
		answers = r.CountingAccepted(store)
		redisBroker.Store(r)
	}
	broker = meters.Broker(broker)
	meters.WatchSubscriptions(store)
	meters.WatchStore(store)

	stats, err := store.Stats(ctx)
	if err != nil {
		return fmt.Errorf("reading the counters: %w", err)
	}

	listener, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	if cfg.Pprof != "" {
		stopProfiling, err := servePprof(cfg.Pprof, logger)
		if err != nil {
			listener.Close()
			return err
		}
		defer stopProfiling()
	}

	logger.Info("aggregator started", append(cfg.logAttrs(),
		"listening", listener.Addr().String(),
		"received", stats.Received, "unique_processed", stats.UniqueProcessed,
		"duplicate_dropped", stats.DuplicateDropped)...)

	commits := consumer.New(store, logger, consumer.WithObserver(meters), consumer.WithCommitTimeout(cfg.CommitTimeout))
	// Closed as the shutdown begins: requests waiting for events answer and event streams
	// end, instead of holding the shutdown for as long as they would last.
	shuttingDown := make(chan struct{})
	server := &nethttp.Server{
		Handler: meters.Requests(http.NewHandler(http.Config{
			Store: answers, Broker: broker, Limits: cfg.Limits, Logger: logger, StartedAt: time.Now(),
			PublishTokens: cfg.Tokens, ReadTokens: cfg.ReadTokens, Metrics: meters.Handler(),
			Commits: commits.Ready, BodyTimeout: cfg.BodyTimeout, MaxBodyMemory: cfg.MaxBodyMemory,
			Shutdown: shuttingDown, StoreTimeout: storeTimeout(cfg.StoreTimeout),
		})),
		// No ReadTimeout or WriteTimeout: they would cut long-polls and event streams. The
		// publish handler bounds its body read itself (-body-timeout).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// The consumers outlive the server: in-flight requests wait on their commits, so the
	// consumers stop only after the server has answered them all.
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsuming()
	consumed := make(chan error, 1)
	go func() {
		consumed <- broker.Consume(consumeCtx, commits.Commit)
	}()
	// Expiry stops with the server; every replica runs it, and the store makes rounds that
	// overlap count each event once.
	expiryCtx, stopExpiry := context.WithCancel(ctx)
	expiryDone := make(chan struct{})
	go func() {
		defer close(expiryDone)
		uts.RunExpiry(expiryCtx, store, cfg.Retention, cfg.ExpireInterval, meters.ExpiryRuns(logExpiry(logger)))
	}()
	defer func() { stopExpiry(); <-expiryDone }() // before the store closes

	server.RegisterOnShutdown(sync.OnceFunc(func() { close(shuttingDown) }))

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	select {
	case err := <-served:
		stopConsuming()
		<-consumed
		return fmt.Errorf("serving: %w", err)
	case err := <-consumed:
		shutdownServer(server, cfg.ShutdownTimeout, logger)
		return fmt.Errorf("consumer stopped: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down: no new requests, draining the queue")
	shutdownServer(server, cfg.ShutdownTimeout, logger)
	stopConsuming()
	select {
	case err := <-consumed:
		if err != nil {
			return fmt.Errorf("draining: %w", err)
		}
	case <-time.After(cfg.ShutdownTimeout):
		return errors.New("draining: timed out")
	}
	// The last word is bounded: a store that stalls must not hold the exit.
	finalCtx, cancelFinal := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFinal()
	final, err := store.Stats(finalCtx)
	if err == nil {
		logger.Info("aggregator stopped", "received", final.Received,
			"unique_processed", final.UniqueProcessed, "duplicate_dropped", final.DuplicateDropped)
	}
	return nil
}

// logExpiry logs the expiry rounds that did something, and every failure: a store whose
// expiry keeps failing keeps growing.
func logExpiry(logger *slog.Logger) func(uts.Expiry, error) {
	return func(e uts.Expiry, err error) {
		switch {
		case err != nil:
			logger.Error("expiry failed; trying again next round", "err", err)
		case e.Events > 0 || e.Fingerprints > 0:
			logger.Info("expired", "events", e.Events, "fingerprints", e.Fingerprints, "more", e.More)
		}
	}
}

// storeTimeout is -store-timeout as http.Config takes it: there, zero is the default and a
// negative bound is none.
func storeTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// memoryBesideBodies is the heap the aggregator needs besides request bodies: the queue,
// batches in flight, connections.
const memoryBesideBodies = 64 << 20

func shutdownServer(server *nethttp.Server, timeout time.Duration, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		// A request still running past the timeout is stuck, most likely in a stalled store:
		// closing its connection ends its context, which cancels its query, so that it lets
		// go of the store, which is closed next.
		logger.Warn("shutdown did not finish in time; closing the connections still open", "error", err)
		_ = server.Close()
	}
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func openStore(ctx context.Context, db string, deliveriesHeld func(context.Context) (time.Time, error), logger *slog.Logger) (uts.Store, error) {
	kind, target, err := storeKind(db)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "postgres":
		store, err := postgres.Open(ctx, target, postgres.WithLogger(logger), postgres.WithDeliveriesHeld(deliveriesHeld))
		if err != nil {
			return nil, fmt.Errorf("opening PostgreSQL: %w", err)
		}
		return store, nil
	default:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, fmt.Errorf("creating the data folder: %w", err)
		}
		store, err := sqlite.Open(ctx, target, sqlite.WithLogger(logger), sqlite.WithDeliveriesHeld(deliveriesHeld))
		if err != nil {
			return nil, fmt.Errorf("opening SQLite %s: %w", target, err)
		}
		return store, nil
	}
}

func openBroker(ctx context.Context, cfg config, deadLetter func(ctx context.Context, delivery string, n int) error, logger *slog.Logger) (uts.Broker, error) {
	if cfg.Broker == "" {
		return inproc.New(inproc.Options{
			QueueEvents: cfg.QueueEvents, BatchEvents: cfg.BatchEvents, Linger: cfg.Linger, Workers: cfg.Workers, CohortWait: cfg.CohortWait,
		}), nil
	}
	name := cfg.ConsumerName
	if name == "" {
		host, _ := os.Hostname()
		name = host
	}
	broker, err := redis.Open(ctx, cfg.Broker, redis.Options{
		KeyPrefix: cfg.RedisPrefix, Consumer: name, BatchEvents: cfg.BatchEvents, Workers: cfg.Workers,
		ClaimIdle: cfg.ClaimIdle, MaxDeliveries: cfg.MaxDeliveries, Logger: logger,
		DeadLetter: deadLetter,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the Redis broker: %w", err)
	}
	return broker, nil
}
