package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/uts-events/uts/internal/flagenv"
	"github.com/uts-events/uts/publisher"
)

// run parses args (each flag has an environment twin, UTS_ plus its name in capitals, which
// applies when the flag is not given), publishes, and prints the summary to stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, asJSON, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Logger = logger

	logger.Info("publishing", "urls", cfg.URLs, "token", flagenv.Masked(cfg.Token), "read_token", flagenv.Masked(cfg.ReadToken),
		"events", cfg.Events, "duplicates", cfg.Duplicates, "topics", cfg.Topics, "batch", cfg.Batch,
		"concurrency", cfg.Concurrency, "rate", cfg.Rate, "duration", cfg.Duration, "file", cfg.File, "verify", cfg.Verify)
	summary, runErr := publisher.Run(ctx, cfg, flagenv.Terminal(stderr))
	if summary.Source == "" { // the run never started
		return runErr
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(summary); err != nil {
			return errors.Join(runErr, fmt.Errorf("write summary: %w", err))
		}
	} else if err := summary.WriteText(stdout); err != nil {
		return errors.Join(runErr, fmt.Errorf("write summary: %w", err))
	}
	return runErr
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (publisher.Config, bool, error) {
	cfg := publisher.DefaultConfig()
	var urls flagenv.List
	var asJSON bool
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&urls, "url", "aggregator base URL; repeat it (or separate with commas) to spread requests round-robin (default "+cfg.URLs[0]+")")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for publishing")
	fs.StringVar(&cfg.ReadToken, "read-token", "", "bearer token for reading /stats (-verify); -token when empty")
	fs.IntVar(&cfg.Events, "events", cfg.Events, "events to send in all, duplicates included; 0 for no limit (needs -duration)")
	fs.Float64Var(&cfg.Duplicates, "duplicates", cfg.Duplicates, "share of -events that re-send earlier events, in [0, 1)")
	fs.IntVar(&cfg.Topics, "topics", cfg.Topics, "number of topics")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "events per request; 1 sends single event objects")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for reproducible events: the same seed makes the same events, duplicates of the first run's; 0 picks a random one, so every run's events are new, and prints it")
	fs.Float64Var(&cfg.Rate, "rate", 0, "events per second over all workers; 0 for no limit")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop generating after this long (with -events, whichever comes first)")
	fs.StringVar(&cfg.File, "file", "", "replay events from this file (NDJSON or a JSON array) instead of generating")
	fs.BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	fs.BoolVar(&cfg.Verify, "verify", false, "check /stats grew by exactly what was sent; fail otherwise")
	fs.DurationVar(&cfg.VerifyTimeout, "verify-timeout", cfg.VerifyTimeout, "how long -verify waits for a queued (202) run to be committed")
	fs.IntVar(&cfg.Retry.MaxAttempts, "retries", cfg.Retry.MaxAttempts, "attempts per request, the first included")
	fs.DurationVar(&cfg.Retry.BaseDelay, "retry-base", cfg.Retry.BaseDelay, "first backoff ceiling; doubles per attempt")
	fs.DurationVar(&cfg.Retry.MaxDelay, "retry-max", cfg.Retry.MaxDelay, "largest backoff (a longer Retry-After is still honoured)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "timeout of one HTTP request")
	fs.DurationVar(&cfg.GiveUpAfter, "give-up-after", cfg.GiveUpAfter, "stop the run once requests have failed this long with no success between (0: never); exits non-zero with what was and was not acknowledged")
	flagenv.SetUsage(fs, "Sends generated or recorded events to UTS aggregators, at least once.", flagenv.Variable)
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := flagenv.Variable(f.Name)
		if v := getenv(name); v != "" && !given[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", name, err))
			}
			given[f.Name] = true
		}
	})
	if envErr != nil {
		return cfg, false, envErr
	}
	if len(urls) > 0 {
		cfg.URLs = urls
	}
	if cfg.File != "" && !given["events"] {
		cfg.Events = 0 // replay the whole file unless told otherwise
	}
	return cfg, asJSON, cfg.Validate()
}
