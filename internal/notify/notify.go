// Package notify tells waiting readers that something was committed. A Broadcaster hands
// out a channel that the next Notify closes: every reader that took it wakes at once, and
// none polls.
package notify

import "sync"

// Broadcaster wakes every waiter at each Notify. The zero value is ready to use.
type Broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that the next Notify closes. Take it before reading what it
// guards, so that a Notify between the read and the wait is not missed.
func (b *Broadcaster) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Notify wakes every waiter. It costs a lock and nothing more when nobody waits.
func (b *Broadcaster) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
