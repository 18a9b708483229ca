package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/flagenv"
	"github.com/uts-events/uts/subscriber"
)

// run parses args (each flag has an environment twin, UTS_ plus its name in capitals, which
// applies when the flag is not given), follows the subscription until ctx is cancelled (or,
// with -exit-idle, until it has caught up), and logs a summary to stderr: stdout may be the
// events themselves.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, logLevel, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	cfg.Logger = logger
	logger.Info("subscriber starting", "urls", cfg.URLs, "token", flagenv.Masked(cfg.Token), "subscription", cfg.Subscription,
		"topics", cfg.Topics, "from", cfg.From, "out", cfg.Out, "commit_every", cfg.CommitEvery,
		"limit", cfg.Limit, "wait", cfg.Wait, "exit_idle", cfg.ExitIdle)
	summary, err := subscriber.Follow(ctx, cfg, stdout, flagenv.Terminal(stderr))
	logger.Info("subscriber stopped", "events", summary.Events, "commits", summary.Commits, "cursor", summary.Cursor,
		"resumed_from", summary.Resumed, "retries", summary.Retries,
		"elapsed", summary.Elapsed.Round(1e6), "events_per_second", int64(summary.EventsPerSecond))
	return err
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (subscriber.Config, slog.Level, error) {
	cfg := subscriber.DefaultConfig()
	var urls, topics flagenv.List
	from := string(cfg.From)
	var level slog.Level
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&urls, "url", "aggregator base URL; repeat it (or separate with commas) for replicas, used round-robin with failover (default "+cfg.URLs[0]+")")
	fs.StringVar(&cfg.Subscription, "subscription", "", "subscription name (required); created on first use, resumed after")
	fs.Var(&topics, "topic", "topic to follow; repeat it or separate with commas; none for every topic")
	fs.StringVar(&from, "from", from, "where a new subscription starts: earliest or latest (an existing one resumes from its cursor)")
	fs.StringVar(&cfg.Out, "out", "", "append the NDJSON lines to this file (fsynced before each commit); stdout when empty or -")
	fs.IntVar(&cfg.CommitEvery, "commit-every", cfg.CommitEvery, "commit the cursor once this many events are written")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for reading (the aggregator's -read-token)")
	fs.IntVar(&cfg.Limit, "limit", cfg.Limit, "events per read, at most 10000")
	fs.DurationVar(&cfg.Wait, "wait", cfg.Wait, "how long a read waits for new events, at most 60s")
	fs.BoolVar(&cfg.ExitIdle, "exit-idle", false, "stop once caught up, after committing (for a one-off drain)")
	fs.IntVar(&cfg.Retry.MaxAttempts, "retries", cfg.Retry.MaxAttempts, "attempts per request, the first included; 0 retries for ever")
	fs.DurationVar(&cfg.Retry.BaseDelay, "retry-base", cfg.Retry.BaseDelay, "first backoff ceiling; doubles per attempt")
	fs.DurationVar(&cfg.Retry.MaxDelay, "retry-max", cfg.Retry.MaxDelay, "largest backoff (a longer Retry-After is still honoured)")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, level, err
	}
	if fs.NArg() > 0 {
		return cfg, level, fmt.Errorf("unexpected arguments: %q", fs.Args())
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
		}
	})
	if envErr != nil {
		return cfg, level, envErr
	}
	if len(urls) > 0 {
		cfg.URLs = urls
	}
	cfg.Topics = topics
	cfg.From = uts.SubscriptionStart(from)
	return cfg, level, cfg.Validate()
}
