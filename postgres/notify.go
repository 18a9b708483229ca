package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uts-events/uts/internal/notify"
)

// Commits of other replicas reach this process's readers through LISTEN/NOTIFY: after an
// Append that stored new events, the store sends a NOTIFY on a channel of its schema, and a
// listener in every replica wakes that replica's readers (the local broadcaster).
//
// The NOTIFY is sent apart from the append's statement, by a goroutine of its own: a
// transaction that notifies takes a lock of the whole database at commit, which would put
// every append of every replica in one queue. One NOTIFY is in flight at a time; the commits
// made while it runs are announced by one more after it, so a burst of appends costs two.
//
// Each notification carries the sending store's id, so a store ignores its own: its readers
// were woken at the commit already.

const (
	// notifyTimeout bounds one NOTIFY: a stalled server must not hold the announcer for ever.
	notifyTimeout = 5 * time.Second
	// listenBackoffMin and listenBackoffMax bound the pause between attempts to bring the
	// listener's connection back.
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// feedChannel is the notification channel of the store whose tables live in schema: stores
// in other schemas of the same database (tests, other deployments) do not wake each other.
// A digest keeps the name a short identifier whatever the schema is called.
func feedChannel(schema string) string {
	sum := sha256.Sum256([]byte(schema))
	return "uts_feed_" + hex.EncodeToString(sum[:8])
}

// commitSignal announces this store's commits to the other replicas and hears theirs.
type commitSignal struct {
	pool    *pgxpool.Pool
	channel string
	self    string // this store's id, the payload of its notifications
	local   *notify.Broadcaster
	log     *slog.Logger

	pending chan struct{} // holds one announcement not yet sent
	ctx     context.Context
	stop    context.CancelFunc
	running sync.WaitGroup

	mu        sync.Mutex // guards listening and stopped, so no listener starts after close
	listening bool       // the listener starts with the first reader
	stopped   bool
}

// newCommitSignal starts the announcer. The listener starts when a reader first waits
// (startListening): a store that nobody reads from holds no extra connection.
func newCommitSignal(ctx context.Context, pool *pgxpool.Pool, local *notify.Broadcaster, log *slog.Logger) (*commitSignal, error) {
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, wrap("read the schema", err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	c := &commitSignal{pool: pool, channel: feedChannel(schema), self: hex.EncodeToString(id), local: local, log: log,
		pending: make(chan struct{}, 1)}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.running.Go(c.announce)
	return c, nil
}

// committed asks for one NOTIFY; it never blocks, and asks made while one is pending or in
// flight are folded into the next.
func (c *commitSignal) committed() {
	select {
	case c.pending <- struct{}{}:
	default:
	}
}

// announce sends the NOTIFYs asked for, one at a time.
func (c *commitSignal) announce() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.pending:
		}
		ctx, cancel := context.WithTimeout(c.ctx, notifyTimeout)
		_, err := c.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, c.channel, c.self)
		cancel()
		if err != nil && c.ctx.Err() == nil {
			// The other replicas' readers hear of it at their next wake-up or wait's end.
			c.log.Warn("postgres: notify the other replicas of a commit", "err", err)
		}
	}
}

// startListening starts the listener once. The first reader waits for its LISTEN, so that no
// commit of another replica after that reader's first read is missed; when it fails, the
// listener goes on trying in the background and wakes the readers once connected.
func (c *commitSignal) startListening() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listening || c.stopped {
		return
	}
	c.listening = true
	conn, err := c.connectAndListen()
	if err != nil {
		c.log.Warn("postgres: listen for the other replicas' commits; retrying", "err", err)
	}
	c.running.Go(func() { c.listenLoop(conn) })
}

// listenLoop wakes the local readers at each other store's notification, on conn, a
// connection of its own that LISTENs on the channel. When the connection is lost (or conn is
// nil) it connects again, pausing longer after each failure, and wakes the readers once
// connected: notifications sent in between were missed.
func (c *commitSignal) listenLoop(conn *pgx.Conn) {
	backoff := listenBackoffMin
	for {
		if conn != nil {
			err := c.hear(conn)
			conn.Close(context.Background())
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("postgres: lost the connection that listens for the other replicas' commits; reconnecting", "err", err)
		}
		var err error
		conn, err = c.connectAndListen()
		if c.ctx.Err() != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		}
		if err != nil {
			c.log.Warn("postgres: listen for the other replicas' commits; retrying", "err", err, "in", backoff)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, listenBackoffMax)
			continue
		}
		backoff = listenBackoffMin
		c.local.Notify()
	}
}

func (c *commitSignal) connectAndListen() (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, notifyTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, c.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{c.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("LISTEN: %w", err)
	}
	return conn, nil
}

// hear wakes the local readers at each notification of another store, until the
// connection fails or the signal stops.
func (c *commitSignal) hear(conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(c.ctx)
		if err != nil {
			return err
		}
		if n.Payload != c.self {
			c.local.Notify()
		}
	}
}

// close stops the announcer and the listener and waits for them.
func (c *commitSignal) close() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.stop()
	c.running.Wait()
}
