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

// wrap gives err a kind and, for the client, a message that says what is wrong with the
// store; the operation and PostgreSQL's own error stay wrapped, for the log.
//
// Every error is uts.Unavailable (retry later) but the few that the events themselves cause
// and that no retry can cure (see permanent). A stalled, read-only, full or unreachable
// database says nothing about the events: a consumer that took it for a rejection would
// dead-letter events it had acknowledged, and the in-process API would answer 500 where the
// publisher should retry. So an error this code does not know is an outage too; the cost of
// being wrong that way is a consumer that waits, never a lost event.
func wrap(op string, err error) error {
	detail := fmt.Errorf("postgres: %s: %w", op, err)
	if permanent(err) {
		return detail
	}
	return uts.Unavailable(problem(err), detail)
}

// permanent reports whether PostgreSQL rejected what it was given for good: the same events
// would be rejected again however long one waited. These are the only store errors that
// may cost a Redis consumer's entry (it goes to the dead-letter stream); a batch rejected
// so is split to find the entry at fault.
//
//   - 22021 character_not_in_repertoire, 22P05 untranslatable_character: the events' text
//     cannot be held in the database's encoding (e.g. an emoji in a LATIN1 database).
//   - class 54, program_limit_exceeded: the statement built from the events is over one of
//     PostgreSQL's limits (an array over 1 GB). A smaller batch may pass, which splitting
//     finds out; the entry alone over it will not.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "22021" || pgErr.Code == "22P05" || strings.HasPrefix(pgErr.Code, "54")
}

// problem says, for the client of a 503, what is wrong with the store.
func problem(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "57014", code == "55P03": // statement timeout, lock timeout
			return "the store timed out"
		case code == "25006": // read_only_sql_transaction: a standby, or set read-only
			return "the store is read-only"
		case code == "53100":
			return "the store is out of disk space"
		case code == "53200":
			return "the store is out of memory"
		case code == "53300":
			return "the store has too many connections"
		case strings.HasPrefix(code, "53"):
			return "the store is out of resources"
		case strings.HasPrefix(code, "08"):
			return "the store is unreachable"
		case strings.HasPrefix(code, "57P"): // admin or crash shutdown, cannot connect now
			return "the store is shutting down or starting up"
		case code == "40001", code == "40P01": // serialization failure, deadlock
			return "the store aborted the transaction on a conflict"
		case strings.HasPrefix(code, "28"), code == "42501": // bad credentials, no privilege
			return "the store refused access"
		}
		return "the store is unavailable"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr):
		return "the store is unreachable"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "the store timed out"
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, pgconn.ErrConnClosed):
		return "the store is unreachable"
	}
	return "the store is unavailable"
}
