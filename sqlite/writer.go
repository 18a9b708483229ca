package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/uts-events/uts"
)

// The writer connection is not safe for concurrent use: everything that touches it holds the
// write lock, and sets the caller's context as the connection's interrupt for that time.

// lock waits for the writer, or for ctx to end.
func (s *Store) lock(ctx context.Context) error {
	select {
	case s.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sqlite: waiting to write: %w", ctx.Err())
	}
}

func (s *Store) unlock() { <-s.writing }

// withWriter runs fn holding the writer, which ctx interrupts.
func (s *Store) withWriter(ctx context.Context, fn func() error) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if s.closed.Load() {
		return uts.Unavailable("the store is closed", nil)
	}
	s.writer.SetInterrupt(ctx)
	defer s.writer.SetInterrupt(context.Background())
	return s.diagnose(fn())
}

// transaction runs fn in a write transaction on the writer, which the caller holds.
// BEGIN IMMEDIATE takes the file's write lock at once. Once fn succeeded the commit is not
// interrupted: the work is done, and throwing it away would only make the caller retry it.
func (s *Store) transaction(ctx context.Context, fn func() error) error {
	if err := s.writes.begin.Exec(); err != nil {
		return classify(ctx, "begin", err)
	}
	err := fn()
	if err == nil && s.commitDelay != nil {
		time.Sleep(s.commitDelay())
	}
	if err == nil {
		s.writer.SetInterrupt(context.Background())
		if err = s.writes.commit.Exec(); err != nil {
			err = classify(ctx, "commit", err)
		}
	}
	if err != nil && !s.writer.GetAutocommit() {
		// ROLLBACK even if interrupted; its own failure leaves nothing more to do.
		s.writer.SetInterrupt(context.Background())
		_ = s.writes.rollback.Exec()
	}
	return err
}
