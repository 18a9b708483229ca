package publisher

import (
	"sync"
	"time"
)

// failureClock measures how long requests have been failing with no success between: a
// publisher facing a dead aggregator stops after Config.GiveUpAfter of it, instead of
// retrying every batch in turn for as long as the run would have lasted. One success, from
// any worker, sets it back.
type failureClock struct {
	mu           sync.Mutex
	failingSince time.Time // zero while the latest attempt that ended succeeded
}

func (c *failureClock) succeeded() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.failingSince = time.Time{}
	c.mu.Unlock()
}

func (c *failureClock) failed(now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.failingSince.IsZero() {
		c.failingSince = now
	}
	c.mu.Unlock()
}

// failingFor is how long every attempt has failed; 0 when the latest one succeeded.
func (c *failureClock) failingFor(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failingSince.IsZero() {
		return 0
	}
	return now.Sub(c.failingSince)
}

// watch calls giveUp once the clock has run for limit, checking a few times per limit;
// it returns when stop is closed.
func (c *failureClock) watch(limit time.Duration, stop <-chan struct{}, giveUp func(failingFor time.Duration)) {
	tick := time.NewTicker(min(max(limit/8, time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if d := c.failingFor(now); d >= limit {
				giveUp(d)
				return
			}
		}
	}
}
