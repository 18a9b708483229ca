package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uts-events/uts"
)

// wrap gives err a kind: uts.Unavailable when PostgreSQL cannot be reached or asks to be
// retried later, so that a consumer backs off and retries the batch instead of treating
// it as a poison event; any other error is wrapped as it is.
func wrap(op string, err error) error {
	if transient(err) {
		return uts.Unavailable("postgres: "+op, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources: disk full, too many connections
			strings.HasPrefix(pgErr.Code, "57P"),         // the server is shutting down or starting up
			pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock: retry the batch
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err) ||
		pgconn.SafeToRetry(err)
}
