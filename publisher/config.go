package publisher

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"
)

// Config is one publishing run.
type Config struct {
	URLs  []string // aggregators, used round-robin
	Token string   // bearer token for publishing
	// ReadToken is the bearer token for /stats (used by Verify); Token when empty.
	ReadToken string

	Events      int     // events in all; 0 for no limit (then Duration or the file's end bounds the run)
	Duplicates  float64 // share of Events that re-send earlier events, in [0, 1)
	Topics      int
	Batch       int // events per request; 1 sends a bare object instead of an array
	Concurrency int // requests in flight
	// Seed makes the generated events: the same seed, the same events. 0 picks a random one
	// (logged), so that the run's ids are new to the aggregator, and Verify can expect each
	// distinct event to be stored.
	Seed     uint64
	Rate     float64       // events per second over all workers; 0 for no limit
	Duration time.Duration // stop generating after this long; 0 for no limit
	File     string        // replay this NDJSON or JSON-array file instead of generating

	Retry RetryPolicy
	// GiveUpAfter stops the run once requests have failed (network errors, 5xx, 429) for this
	// long with no success between; 0 never gives up.
	GiveUpAfter time.Duration
	Timeout     time.Duration // one HTTP round trip
	// Grace is how long requests in flight may still finish once ctx is cancelled.
	Grace time.Duration

	Verify        bool
	VerifyTimeout time.Duration // how long to wait for an asynchronous consumer to catch up

	HTTPClient *http.Client // optional; overrides Timeout
	Logger     *slog.Logger // optional
}

// DefaultConfig is a small run against a local aggregator.
func DefaultConfig() Config {
	return Config{
		URLs:          []string{"http://localhost:8080"},
		Events:        1000,
		Topics:        3,
		Batch:         100,
		Concurrency:   4,
		Retry:         DefaultRetryPolicy(),
		GiveUpAfter:   time.Minute,
		Timeout:       30 * time.Second,
		Grace:         5 * time.Second,
		VerifyTimeout: 30 * time.Second,
	}
}

// Validate reports every setting that is out of range at once.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(c.URLs) == 0, "no aggregator URL")
	check(c.Events < 0, "events must not be negative, got %d", c.Events)
	check(c.Events == 0 && c.Duration == 0 && c.File == "", "with events 0 (no limit) a duration is needed")
	check(c.Duplicates < 0 || c.Duplicates >= 1 || math.IsNaN(c.Duplicates), "duplicates must be in [0, 1), got %v", c.Duplicates)
	check(c.Topics < 1, "topics must be at least 1, got %d", c.Topics)
	check(c.Batch < 1, "batch must be at least 1, got %d", c.Batch)
	check(c.Concurrency < 1, "concurrency must be at least 1, got %d", c.Concurrency)
	check(c.Rate < 0, "rate must not be negative, got %v", c.Rate)
	check(c.Duration < 0, "duration must not be negative, got %v", c.Duration)
	check(c.Timeout <= 0 && c.HTTPClient == nil, "timeout must be positive, got %v", c.Timeout)
	check(c.GiveUpAfter < 0, "give-up-after must not be negative, got %v", c.GiveUpAfter)
	check(c.Grace < 0, "grace must not be negative, got %v", c.Grace)
	check(c.Verify && c.VerifyTimeout <= 0, "verify timeout must be positive, got %v", c.VerifyTimeout)
	if err := c.Retry.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) client() (*Client, error) {
	hc := c.HTTPClient
	switch {
	case hc != nil:
	case usesPlainTransport(c.URLs):
		// The transport bounds each round trip itself: a Client Timeout would add a
		// timer and a goroutine to every request made through a transport not net/http's.
		hc = &http.Client{Transport: newPlainTransport(c.Timeout, c.Concurrency)}
	default:
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = c.Concurrency
		hc = &http.Client{Timeout: c.Timeout, Transport: transport}
	}
	return NewClient(ClientConfig{URLs: c.URLs, Token: c.Token, ReadToken: c.ReadToken, Retry: c.Retry, HTTPClient: hc, Logger: c.Logger})
}
