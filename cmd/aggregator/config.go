package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/flagenv"
)

// config is every setting of the aggregator. It is filled from flags, then from the
// environment for flags not given, validated once, and logged at start with secrets masked.
type config struct {
	Addr            string
	DB              string // sqlite:PATH, a bare PATH, or postgres://…
	Broker          string // "" for the in-process queue, or redis://…
	Workers         int
	QueueEvents     int
	BatchEvents     int
	Linger          time.Duration
	CohortWait      time.Duration
	Limits          uts.Limits
	Tokens          []string
	ReadTokens      []string
	ConsumerName    string
	RedisPrefix     string
	ClaimIdle       time.Duration
	MaxDeliveries   int
	LogLevel        slog.Level
	LogFormat       string
	ShutdownTimeout time.Duration
	BodyTimeout     time.Duration // longest a client may take to send a /publish body
	IdleTimeout     time.Duration // longest an idle keep-alive connection stays open
	MaxBodyMemory   int64         // request-body bytes held at once across all requests
	StartTimeout    time.Duration // how long to retry reaching PostgreSQL and Redis at start
	CommitTimeout   time.Duration // longest one commit to the store may take
	StoreTimeout    time.Duration // longest one store call of a request may take
	Probe           string        // a URL to check instead of serving; see probe
	Pprof           string        // a loopback address serving net/http/pprof; "" for none
	Retention       uts.Retention // how long events and their fingerprints are kept
	ExpireInterval  time.Duration // how often expiry runs when nothing is left over
}

// parseConfig reads flags from args and, for each flag not given, its UTS_* twin from getenv.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{Limits: uts.DefaultLimits(), Retention: uts.Retention{Topics: map[string]time.Duration{}}}
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := map[string]string{} // flag name -> variable
	bind := func(name, variable string) { env[name] = variable }

	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	bind("addr", "UTS_ADDR")
	fs.StringVar(&c.DB, "db", "sqlite:./data/uts.db", "store URL: sqlite:PATH or postgres://…")
	bind("db", "UTS_DB")
	fs.StringVar(&c.Broker, "broker", "", "broker URL: empty for the in-process queue, or redis://HOST:PORT/DB")
	bind("broker", "UTS_BROKER")
	fs.IntVar(&c.Workers, "workers", 0, "consumer workers committing batches in parallel (Redis: consume loops, consumers NAME, NAME/2, …) (default 1 with SQLite and the in-process queue, 2 otherwise)")
	bind("workers", "UTS_WORKERS")
	fs.IntVar(&c.QueueEvents, "queue-events", 100_000, "in-process queue capacity, in events; a full queue answers 503")
	bind("queue-events", "UTS_QUEUE_EVENTS")
	fs.IntVar(&c.BatchEvents, "commit-events", 5_000, "most events committed in one transaction")
	bind("commit-events", "UTS_COMMIT_EVENTS")
	fs.DurationVar(&c.Linger, "linger", 0, "longest a consumer waits to fill a batch (default 0 with SQLite and the in-process queue, 2ms otherwise)")
	bind("linger", "UTS_LINGER")
	fs.DurationVar(&c.CohortWait, "cohort-wait", 0, "with no -linger, longest the in-process queue waits, after a commit, for the requests it answered to come back, and never longer than that commit took (default 1ms with SQLite, the in-process queue, one worker and no linger; 0 otherwise)")
	bind("cohort-wait", "UTS_COHORT_WAIT")
	fs.IntVar(&c.Limits.MaxEventBytes, "max-event-bytes", c.Limits.MaxEventBytes, "largest event, in bytes")
	bind("max-event-bytes", "UTS_MAX_EVENT_BYTES")
	fs.IntVar(&c.Limits.MaxBatchEvents, "max-batch-events", c.Limits.MaxBatchEvents, "most events in one request")
	bind("max-batch-events", "UTS_MAX_BATCH_EVENTS")
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-body-bytes", c.Limits.MaxBodyBytes, "largest request body, in bytes")
	bind("max-body-bytes", "UTS_MAX_BODY_BYTES")
	fs.Int64Var(&c.MaxBodyMemory, "max-body-memory", 256<<20, "request-body bytes held at once across all requests; past it /publish answers 503")
	bind("max-body-memory", "UTS_MAX_BODY_MEMORY")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", 30*time.Second, "longest a client may take to send a /publish body; a slower one gets 408 and its connection is closed")
	bind("body-timeout", "UTS_BODY_TIMEOUT")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 60*time.Second, "longest an idle keep-alive connection stays open")
	bind("idle-timeout", "UTS_IDLE_TIMEOUT")
	fs.Func("token", "bearer token required by POST /publish (repeat or comma-separate for several)", func(s string) error {
		c.Tokens = append(c.Tokens, splitList(s)...)
		return nil
	})
	bind("token", "UTS_TOKEN")
	fs.Func("read-token", "bearer token required by the read endpoints (repeat or comma-separate for several)", func(s string) error {
		c.ReadTokens = append(c.ReadTokens, splitList(s)...)
		return nil
	})
	bind("read-token", "UTS_READ_TOKEN")
	fs.StringVar(&c.ConsumerName, "consumer-name", "", "Redis consumer name; a replica restarted with the same name resumes its own pending entries (default: host name)")
	bind("consumer-name", "UTS_CONSUMER_NAME")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "uts:", "prefix of the Redis keys")
	bind("redis-prefix", "UTS_REDIS_PREFIX")
	fs.DurationVar(&c.ClaimIdle, "claim-idle", 30*time.Second, "idle time after which a dead consumer's pending entries are claimed")
	bind("claim-idle", "UTS_CLAIM_IDLE")
	fs.IntVar(&c.MaxDeliveries, "max-deliveries", 5, "store rejections of one entry before it goes to the dead-letter stream")
	bind("max-deliveries", "UTS_MAX_DELIVERIES")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	bind("log-level", "UTS_LOG_LEVEL")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	bind("log-format", "UTS_LOG_FORMAT")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "longest wait to drain on SIGINT/SIGTERM")
	bind("shutdown-timeout", "UTS_SHUTDOWN_TIMEOUT")
	fs.DurationVar(&c.StartTimeout, "start-timeout", 60*time.Second, "how long to keep retrying, with backoff, a PostgreSQL or Redis that is unreachable at start (0: fail at once)")
	bind("start-timeout", "UTS_START_TIMEOUT")
	fs.DurationVar(&c.CommitTimeout, "commit-timeout", 30*time.Second, "longest one commit to the store may take before it is abandoned as a stall: 503 in-process, retried in Redis mode (0: no limit)")
	bind("commit-timeout", "UTS_COMMIT_TIMEOUT")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", 30*time.Second, "longest one read (or subscription change) of a request may wait for the store: past it, 503 'the store timed out' instead of a request held for as long as a stall (0: no limit)")
	bind("store-timeout", "UTS_STORE_TIMEOUT")
	fs.Func("retention", "how long events are kept after processing, for every topic (30d) or one (orders=7d); repeat or comma-separate; default forever. Expired payloads are deleted, their fingerprints keep deduplicating", func(s string) error {
		return uts.ParseRetention(s, &c.Retention.Events, c.Retention.Topics)
	})
	bind("retention", "UTS_RETENTION")
	fs.Func("dedup-retention", "how long a deduplication fingerprint is kept after its event was processed, at least every -retention (default forever: a duplicate stays a duplicate)", func(s string) (err error) {
		c.Retention.Fingerprints, err = uts.ParseRetentionDuration(s)
		return err
	})
	bind("dedup-retention", "UTS_DEDUP_RETENTION")
	fs.DurationVar(&c.ExpireInterval, "expire-interval", time.Minute, "how often expiry looks for expired events; a backlog is deleted in chunks without waiting")
	bind("expire-interval", "UTS_EXPIRE_INTERVAL")
	fs.StringVar(&c.Pprof, "pprof", "", "serve net/http/pprof on this loopback address (127.0.0.1:PORT), apart from the API; empty for none")
	bind("pprof", "UTS_PPROF")
	// No UTS_PROBE: a variable set in a container's environment would turn every start into
	// a probe, and the server would never run.
	fs.StringVar(&c.Probe, "probe", "", "instead of serving, GET this URL and exit 0 on a 2xx, 1 otherwise (a health check for images without curl)")

	flagenv.SetUsage(fs, "Serves the UTS Event System API.", func(name string) string { return env[name] })
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, variable := range env {
		if v := getenv(variable); v != "" && !given[name] {
			if err := fs.Set(name, v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", variable, v, err)
			}
			given[name] = true
		}
	}
	c.applyCommitDefaults(given)
	return c, c.validate()
}

// applyCommitDefaults sets -workers, -linger and -cohort-wait where neither the flag nor
// its variable did, by what the consumer commits to. SQLite has one writer: with the
// in-process queue, one worker commits whatever has queued the moment the last commit ends,
// because requests queue while the writer is busy; a linger only adds its own time to every
// request, and a second worker only holds a small group while it waits for the writer. One
// worker without a linger was 1.2 – 1.5× the requests/s of two with 2 ms for single events,
// and 1.1 – 1.2× the events/s for batches of 100. The one wait kept is for the requests the
// last commit answered, which come back together (see inproc's gather): single events
// 0.88 – 1.22× (median 1.05) in 19 alternated rounds, batches and light load unchanged
// (docs/benchmarks.md, issue #11). PostgreSQL commits in parallel, and in Redis mode the
// workers are consume loops, so both keep two workers, the 2 ms linger and no cohort wait.
func (c *config) applyCommitDefaults(given map[string]bool) {
	kind, _, _ := storeKind(c.DB)
	oneWriter := kind == "sqlite" && c.Broker == ""
	if !given["workers"] {
		c.Workers = 2
		if oneWriter {
			c.Workers = 1
		}
	}
	if !given["linger"] {
		c.Linger = 2 * time.Millisecond
		if oneWriter {
			c.Linger = 0
		}
	}
	// The cohort wait was measured with one worker and no linger, and a linger replaces it.
	if !given["cohort-wait"] && oneWriter && c.Workers == 1 && c.Linger == 0 {
		c.CohortWait = time.Millisecond
	}
}

// envVariables lists every variable the aggregator reads; a test checks the deployment
// files against it.
func envVariables() []string {
	var names []string
	_, _ = parseConfig(nil, func(v string) string { names = append(names, v); return "" }, io.Discard)
	return names
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func (c config) validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive, got %d", name, v))
		}
	}
	positive("workers", c.Workers)
	positive("queue-events", c.QueueEvents)
	positive("commit-events", c.BatchEvents)
	positive("max-event-bytes", c.Limits.MaxEventBytes)
	positive("max-batch-events", c.Limits.MaxBatchEvents)
	positive("max-deliveries", c.MaxDeliveries)
	if c.Limits.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("-max-body-bytes must be positive"))
	}
	if c.MaxBodyMemory < c.Limits.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("-max-body-memory (%d) must be at least -max-body-bytes (%d), or a largest body could never be read", c.MaxBodyMemory, c.Limits.MaxBodyBytes))
	}
	if c.BodyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-body-timeout must be positive"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-idle-timeout must be positive"))
	}
	if c.CohortWait < 0 {
		errs = append(errs, fmt.Errorf("-cohort-wait must not be negative"))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("-linger must not be negative"))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("-start-timeout must not be negative"))
	}
	if c.CommitTimeout < 0 {
		errs = append(errs, fmt.Errorf("-commit-timeout must not be negative"))
	}
	if c.StoreTimeout < 0 {
		errs = append(errs, fmt.Errorf("-store-timeout must not be negative"))
	}
	if c.ExpireInterval <= 0 {
		errs = append(errs, fmt.Errorf("-expire-interval must be positive"))
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("-retention, -dedup-retention: %w", err))
	}
	if _, _, err := storeKind(c.DB); err != nil {
		errs = append(errs, err)
	}
	if c.Broker != "" && !strings.HasPrefix(c.Broker, "redis://") && !strings.HasPrefix(c.Broker, "rediss://") {
		errs = append(errs, fmt.Errorf("-broker must be empty or a redis:// URL, got %q", mask(c.Broker)))
	}
	if err := checkPprofAddr(c.Pprof); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format must be text or json, got %q", c.LogFormat))
	}
	return errors.Join(errs...)
}

// storeKind splits a store URL into its kind and what that kind opens.
func storeKind(db string) (kind, target string, err error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return "postgres", db, nil
	case strings.HasPrefix(db, "sqlite://"):
		return "sqlite", strings.TrimPrefix(db, "sqlite://"), nil
	case strings.HasPrefix(db, "sqlite:"):
		return "sqlite", strings.TrimPrefix(db, "sqlite:"), nil
	case db == "":
		return "", "", fmt.Errorf("-db must name a store")
	case strings.Contains(db, "://"):
		return "", "", fmt.Errorf("-db: unknown store %q; use sqlite:PATH or postgres://…", mask(db))
	}
	return "sqlite", db, nil
}

// mask hides the password of a URL, for logs.
func mask(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// logValue is the config as logged at start: URLs masked, tokens counted, never shown.
func (c config) logAttrs() []any {
	broker := "in-process"
	if c.Broker != "" {
		broker = mask(c.Broker)
	}
	return []any{
		"addr", c.Addr, "db", mask(c.DB), "broker", broker, "workers", c.Workers,
		"queue_events", c.QueueEvents, "batch_events", c.BatchEvents, "linger", c.Linger, "cohort_wait", c.CohortWait,
		"max_event_bytes", c.Limits.MaxEventBytes, "max_batch_events", c.Limits.MaxBatchEvents,
		"max_body_bytes", c.Limits.MaxBodyBytes, "max_body_memory", c.MaxBodyMemory,
		"body_timeout", c.BodyTimeout, "idle_timeout", c.IdleTimeout, "publish_tokens", len(c.Tokens), "read_tokens", len(c.ReadTokens),
		"retention", c.Retention.String(), "dedup_retention", uts.FormatRetention(c.Retention.Fingerprints),
	}
}
