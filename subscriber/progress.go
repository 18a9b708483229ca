package subscriber

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

const (
	progressEvery = 250 * time.Millisecond
	// lagEvery is how often the progress line asks the aggregator for the lag: one small
	// request a second, and only when a person is watching.
	lagEvery = time.Second
)

// showProgress redraws one status line on w until the returned stop is called; w should be a
// terminal, since the line is redrawn with a carriage return. A nil w shows nothing and asks
// the aggregator nothing.
func (f *follower) showProgress(ctx context.Context, w io.Writer, start time.Time) (stop func()) {
	if w == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		lastLag := time.Now()
		for {
			select {
			case <-tick.C:
				fmt.Fprint(w, "\r"+f.progressLine(time.Since(start)))
				if time.Since(lastLag) >= lagEvery {
					lastLag = time.Now()
					f.refreshLag(ctx)
				}
			case <-ctx.Done():
				fmt.Fprint(w, "\r"+f.progressLine(time.Since(start))+"\n")
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// refreshLag asks once, without retrying: a missed reading only leaves the line a second old.
func (f *follower) refreshLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, lagEvery)
	defer cancel()
	var sub struct {
		Lag int64 `json:"lag"`
	}
	base := f.client.urls[0]
	data, _, err := f.client.attempt(ctx, "GET", base+subscriptionPath(f.cfg.Subscription), nil, lagEvery, nil)
	if err == nil && json.Unmarshal(data, &sub) == nil {
		f.lag.Store(sub.Lag)
	}
}

func (f *follower) progressLine(elapsed time.Duration) string {
	written := f.written.Load()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(written) / s
	}
	return fmt.Sprintf("%s: %d events  %.0f ev/s  lag %d  %s  retries %d\x1b[K",
		f.cfg.Subscription, written, rate, f.lag.Load(), elapsed.Round(time.Second), f.client.Retries())
}
