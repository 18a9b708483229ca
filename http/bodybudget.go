package http

import (
	"sync"

	"github.com/uts-events/uts"
)

// bodyBudget caps the request-body bytes held at once across all requests. Without it, a
// few hundred clients that each declare a large body and send it slowly hold that much
// memory each until they finish: a process that needs 20 MB grew to 784 MB. A request
// reserves before it reads, and one that cannot is answered 503 at once rather than queued,
// so a client retries against memory that has been freed.
//
// Large bodies may not take the last quarter of the budget: it is kept for bodies of at
// most smallBody bytes, so that a few clients holding the largest bodies open cannot shut
// out every ordinary publisher, whose batches are a few KiB.
type bodyBudget struct {
	mu       sync.Mutex
	capacity int64
	headroom int64 // kept for small bodies
	held     int64
}

// smallBody is the largest body that may use the headroom.
const smallBody = 256 << 10

// newBodyBudget caps the bytes held at capacity. The headroom kept for small bodies never
// leaves less than the largest body, maxBody, for large ones.
func newBodyBudget(capacity, maxBody int64) *bodyBudget {
	headroom := max(0, min(capacity/4, capacity-maxBody))
	return &bodyBudget{capacity: capacity, headroom: headroom}
}

// reserve takes n more bytes of the budget for a claim that then holds total, or fails with
// KindUnavailable.
func (b *bodyBudget) reserve(n, total int64) error {
	limit := b.capacity
	if total > smallBody {
		limit -= b.headroom
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > limit {
		return uts.Errorf(uts.KindUnavailable,
			"the server holds as many request bodies as its memory allows (-max-body-memory %d bytes); retry later", b.capacity)
	}
	b.held += n
	return nil
}

// release gives back n bytes taken by reserve.
func (b *bodyBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
}

// inUse is the bytes reserved now.
func (b *bodyBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// bodyClaim is one request's share of the budget, which grows as its body is read.
type bodyClaim struct {
	budget *bodyBudget
	held   int64
}

// grow raises the claim to n bytes.
func (c *bodyClaim) grow(n int64) error {
	if n <= c.held {
		return nil
	}
	if err := c.budget.reserve(n-c.held, n); err != nil {
		return err
	}
	c.held = n
	return nil
}

// release gives the whole claim back; the request's body and the events decoded from it
// are no longer held.
func (c *bodyClaim) release() {
	c.budget.release(c.held)
	c.held = 0
}
