package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/uts-events/uts"
)

// Start-up backoff: the first wait, and the longest.
const (
	startFirstWait = 100 * time.Millisecond
	startMaxWait   = 5 * time.Second
)

// openRetrying calls open until it succeeds, fails for a reason waiting cannot cure, or the
// start deadline passes. Services started together (docker compose, a Kubernetes pod, a
// host's boot) come up in any order, and PostgreSQL or Redis may still be starting, or
// loading its data, when the aggregator does: exiting at once would leave that to a
// restart policy, or to nobody.
//
// The deadline decides whether to try again, never cuts an attempt short: an attempt may be
// a long migration, which must not be cancelled for being slow. (A host that drops packets
// instead of refusing is bounded by the driver's own timeouts, e.g. connect_timeout in a
// PostgreSQL URL.)
func openRetrying[T any](ctx context.Context, deadline time.Time, what string, logger *slog.Logger, open func(context.Context) (T, error)) (T, error) {
	wait := startFirstWait
	for attempt := 1; ; attempt++ {
		v, err := open(ctx)
		if err == nil {
			if attempt > 1 {
				logger.Info(what+" reachable", "attempts", attempt)
			}
			return v, nil
		}
		if ctx.Err() != nil || !worthRetryingAtStart(err) {
			return v, err
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return v, fmt.Errorf("%s still unreachable after -start-timeout (%d attempts): %w", what, attempt, err)
		}
		// Full jitter: replicas started together do not knock on the same door in step.
		sleep := min(time.Duration(rand.Int64N(int64(wait))+1), remaining)
		logger.Warn(what+" unreachable at start; retrying", "attempt", attempt, "retry_in", sleep.Round(time.Millisecond),
			"gives_up_in", remaining.Round(time.Second), "error", err)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return v, err
		}
		wait = min(wait*2, startMaxWait)
	}
}

// worthRetryingAtStart tells an error that waiting may cure (nothing listens yet, the
// connection broke, the server is starting up or loading its data) from one it cannot (a bad
// URL, a wrong password, a database that does not exist), which must fail at once, naming
// itself, rather than after a minute of retries.
//
// It reads the drivers' errors through the methods they share (pgconn.PgError's SQLState,
// go-redis's RedisError marker), so this package needs neither driver.
func worthRetryingAtStart(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		code := pg.SQLState()
		// 57P03 cannot_connect_now: starting up, shutting down, in recovery; class 08: the
		// connection failed; 53300 too_many_connections. Anything else (28P01 a wrong
		// password, 3D000 no such database, …) is the configuration's to fix.
		return code == "57P03" || strings.HasPrefix(code, "08") || code == "53300"
	}
	var redisErr interface {
		error
		RedisError()
	}
	if errors.As(err, &redisErr) {
		// A server that answers: only its "not now" errors are worth waiting for.
		// (WRONGPASS, NOAUTH, NOPERM and the like are the configuration's.)
		for _, prefix := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"} {
			if strings.HasPrefix(redisErr.Error(), prefix) {
				return true
			}
		}
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	// The stores and brokers mark what a retry may cure; what they leave unmarked is not.
	return uts.KindOf(err) == uts.KindUnavailable
}
