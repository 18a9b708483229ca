package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
)

// classify wraps a driver error for the caller. An ended context is named as such even when
// the driver reports it as an interrupted statement; a locked, full or unreachable file is
// uts.Unavailable, since retrying later may succeed.
func classify(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("sqlite: %s: %w (%w)", op, ctxErr, err)
	}
	var e *sqlite3.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case sqlite3.BUSY, sqlite3.LOCKED, sqlite3.IOERR, sqlite3.FULL, sqlite3.CANTOPEN:
			return uts.Unavailable("sqlite: "+op, err)
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}
