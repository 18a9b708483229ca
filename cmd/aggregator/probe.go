package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// probeTimeout bounds one probe, so that a hung server reads as unhealthy rather than as a
// hung health check.
const probeTimeout = 5 * time.Second

// probe GETs target and succeeds on a 2xx. The container image is distroless, with no shell
// and no curl, so its health check runs the aggregator itself: `aggregator -probe URL`.
func probe(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-probe: want an http(s)://host[:port]/path URL, got %q", target)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: status %d", target, resp.StatusCode)
	}
	return nil
}
