package sqlite

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ncruces/go-sqlite3"

	"github.com/uts-events/uts"
)

// classify wraps a driver error for the caller. An ended context is named as such even when
// the driver reports it as an interrupted statement; a locked, full, read-only or unreadable
// file is uts.Unavailable, since retrying later may succeed, with a message for the client
// that says what is wrong with the store (the operation and the driver's error stay
// wrapped, for the log).
func classify(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("sqlite: %s: %w (%w)", op, ctxErr, err)
	}
	detail := fmt.Errorf("sqlite: %s: %w", op, err)
	// A statement's error is an *sqlite3.Error, a connection's Exec returns the bare code:
	// errors.As finds the primary code in both.
	// The file system's own error, where SQLite kept it, says more than SQLite's code: a
	// write that found the disk full surfaces as an I/O error when the file grows by
	// truncation or by a write the driver did not map.
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return uts.Unavailable("the store is out of disk space", detail)
	case errors.Is(err, syscall.EROFS):
		return uts.Unavailable("the store is read-only", detail)
	}
	var code sqlite3.ErrorCode
	if errors.As(err, &code) {
		if message := problem(code); message != "" {
			return uts.Unavailable(message, detail)
		}
	}
	return detail
}

// problem says, for the client of a 503, what is wrong with the store; "" for an error that
// is not an outage.
func problem(code sqlite3.ErrorCode) string {
	switch code {
	case sqlite3.BUSY, sqlite3.LOCKED:
		return "the store is busy"
	case sqlite3.FULL:
		return "the store is out of disk space"
	case sqlite3.READONLY:
		return "the store is read-only"
	case sqlite3.IOERR:
		return ioProblem
	case sqlite3.CANTOPEN:
		return "the store cannot open its file"
	}
	return ""
}

// ioProblem is the message of an I/O error whose cause SQLite did not keep; see fileSystemFault.
const ioProblem = "the store cannot read or write its file"

// diagnose names what is wrong with the file system under an I/O error, which SQLite reports
// without its cause on a commit: a full disk or a read-only mount then says so.
func (s *Store) diagnose(err error) error {
	var e *uts.Error
	if !errors.As(err, &e) || e.Message != ioProblem {
		return err
	}
	if message := fileSystemFault(s.dir); message != "" {
		return uts.Unavailable(message, e.Err)
	}
	return err
}
