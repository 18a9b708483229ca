package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uts-events/uts"
	"github.com/uts-events/uts/internal/testenv"
	"github.com/uts-events/uts/postgres"
)

// TestErrorsAreClassified provokes real PostgreSQL errors and checks what the store makes of
// them. A stalled, read-only, full or unreachable database is uts.Unavailable, retry later,
// with a message that says what is wrong with the store: a consumer that took one of them for
// a rejection of the events would dead-letter events it had acknowledged. Only the events'
// own content that the database can never hold is not. PostgreSQL's error stays wrapped, for
// the log.
func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(t *testing.T, u string) *pgx.Conn {
		t.Helper()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	setup := connect(t, u)
	if _, err := setup.Exec(ctx, "CREATE TABLE held (id int); CREATE TABLE written (id int)"); err != nil {
		t.Fatal(err)
	}
	testenv.LockTable(t, u, "held", "ACCESS EXCLUSIVE")

	// raise is a real error from the server with the given SQLSTATE, for the conditions a
	// test cannot bring about on a shared server (a full disk).
	raise := func(condition string) string {
		return "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '" + condition + "'; END $$"
	}
	cases := []struct {
		name      string
		params    map[string]string // the session's settings
		sql       string
		code      string // the SQLSTATE PostgreSQL answers
		message   string // "" for an error that is not uts.Unavailable
		permanent bool
	}{
		{name: "statement timeout", params: map[string]string{"statement_timeout": "100"},
			sql: "SELECT pg_sleep(5)", code: "57014", message: "the store timed out"},
		{name: "statement timeout on a locked table", params: map[string]string{"statement_timeout": "100"},
			sql: "INSERT INTO held VALUES (1)", code: "57014", message: "the store timed out"},
		{name: "lock timeout", params: map[string]string{"lock_timeout": "100"},
			sql: "INSERT INTO held VALUES (1)", code: "55P03", message: "the store timed out"},
		{name: "read-only session", params: map[string]string{"default_transaction_read_only": "on"},
			sql: "INSERT INTO written VALUES (1)", code: "25006", message: "the store is read-only"},
		{name: "read-only transaction",
			sql: "BEGIN; SET transaction_read_only = on; INSERT INTO written VALUES (1); COMMIT", code: "25006", message: "the store is read-only"},
		{name: "disk full", sql: raise("disk_full"), code: "53100", message: "the store is out of disk space"},
		{name: "too many connections", sql: raise("too_many_connections"), code: "53300", message: "the store has too many connections"},
		{name: "shutting down", sql: raise("admin_shutdown"), code: "57P01", message: "the store is shutting down or starting up"},
		{name: "deadlock", sql: raise("deadlock_detected"), code: "40P01", message: "the store aborted the transaction on a conflict"},
		{name: "table gone", sql: "INSERT INTO no_such_table VALUES (1)", code: "42P01", message: "the store is unavailable"},
		{name: "no privilege", sql: raise("insufficient_privilege"), code: "42501", message: "the store refused access"},
		{name: "an unknown error", sql: raise("P0001"), code: "P0001", message: "the store is unavailable"},
		{name: "text the database cannot hold", sql: "SELECT convert_from('\\xff'::bytea, 'UTF8')", code: "22021", permanent: true},
		{name: "untranslatable text", sql: raise("untranslatable_character"), code: "22P05", permanent: true},
		{name: "over a limit", sql: raise("program_limit_exceeded"), code: "54000", permanent: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			su := u
			for name, value := range c.params {
				su = testenv.WithParam(t, su, name, value)
			}
			_, pgErr := connect(t, su).Exec(ctx, c.sql)
			var raw *pgconn.PgError
			if !errors.As(pgErr, &raw) || raw.Code != c.code {
				t.Fatalf("%s: got %v; want SQLSTATE %s", c.sql, pgErr, c.code)
			}
			checkWrapped(t, postgres.Wrap("append", pgErr), c.message, c.permanent)
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		_, err := pgx.Connect(ctx, "postgres://root@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
		if err == nil {
			t.Fatal("connected to port 1")
		}
		checkWrapped(t, postgres.Wrap("connect", err), "the store is unreachable", false)
	})
	t.Run("context deadline", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := connect(t, u).Exec(short, "SELECT pg_sleep(5)")
		if err == nil {
			t.Fatal("pg_sleep(5) finished within 50ms")
		}
		checkWrapped(t, postgres.Wrap("append", err), "the store timed out", false)
	})
}

// checkWrapped checks that err is uts.Unavailable with message for the client, and that its
// text, which is logged, still has the operation and PostgreSQL's error; or, when
// permanent, that it is not uts.Unavailable.
func checkWrapped(t *testing.T, err error, message string, permanent bool) {
	t.Helper()
	if permanent {
		if uts.KindOf(err) == uts.KindUnavailable {
			t.Fatalf("%v: uts.Unavailable; the events' own content that PostgreSQL cannot hold is no outage", err)
		}
		return
	}
	var e *uts.Error
	if !errors.As(err, &e) || e.Kind != uts.KindUnavailable {
		t.Fatalf("%v: kind %v; want uts.Unavailable, so that it is retried and never dead-lettered", err, uts.KindOf(err))
	}
	if e.Message != message {
		t.Errorf("client's message %q; want %q", e.Message, message)
	}
	if !strings.Contains(err.Error(), "postgres: ") || errors.Unwrap(err) == nil {
		t.Errorf("%q: the operation and the driver's error must stay in the error for the log", err)
	}
}

// TestAppendToLockedTableIsUnavailable is the stall seen in production: the events table
// locked in SHARE MODE (Ping still answers) and a statement_timeout. Append fails with
// uts.Unavailable, "the store timed out", and goes through once the lock is gone.
func TestAppendToLockedTableIsUnavailable(t *testing.T) {
	t.Parallel()
	_, u := openStore(t)
	s, err := postgres.Open(context.Background(), testenv.WithParam(t, u, "statement_timeout", "200"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	release := testenv.LockTable(t, u, "events", "SHARE")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with the table locked: %v; a lock stalls writes, not the connection", err)
	}
	_, err = s.Append(ctx, []uts.Event{event("stall", "a", "x")})
	checkWrapped(t, err, "the store timed out", false)
	release()
	outcomes, err := s.Append(ctx, []uts.Event{event("stall", "a", "x")})
	if err != nil || len(outcomes) != 1 || outcomes[0] != uts.OutcomeNew {
		t.Fatalf("Append after the lock: %v, %v; want new: the failed one stored nothing", outcomes, err)
	}
}
