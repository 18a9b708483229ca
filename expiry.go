package uts

import (
	"context"
	"time"
)

// ExpiryChunk is the most rows one Expire call deletes in the background: a few
// milliseconds of work, so that appends queued behind it wait no longer than that.
const ExpiryChunk = 5000

// ExpiryTimeout bounds one Expire call: a chunk takes milliseconds, so one that runs this
// long is stuck behind a lock or a stalled disk, and is better abandoned and tried again
// next round than left holding whatever it holds.
const ExpiryTimeout = time.Minute

// RunExpiry expires what r says has expired, round after round, until ctx ends: every
// interval, and at once again after a call that stopped at its limit (Expiry.More), so a
// backlog drains in chunks without any one of them holding appends up. report sees every
// call's result, an error included; a failed call is tried again next round.
func RunExpiry(ctx context.Context, s Store, r Retention, interval time.Duration, report func(Expiry, error)) {
	if r.IsForever() {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, ExpiryTimeout)
		expiry, err := s.Expire(callCtx, r, time.Now(), ExpiryChunk)
		cancel()
		if ctx.Err() != nil {
			return
		}
		report(expiry, err)
		if err == nil && expiry.More {
			timer.Reset(0)
			continue
		}
		timer.Reset(interval)
	}
}
