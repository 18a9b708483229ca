package http

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/uts-events/uts"
)

const (
	// streamPage is how many events a stream reads from the store at once: a slow reader
	// holds one page in the server's memory, however far behind it is.
	streamPage = 100
	// defaultHeartbeat is how often an idle stream sends a comment, so that proxies and
	// clients see it alive and a reader that went away is noticed.
	defaultHeartbeat = 15 * time.Second
	// defaultStreamWriteWindow bounds how long one page (or heartbeat) may take to reach the
	// reader; a reader stuck past it is dropped and its slot freed.
	defaultStreamWriteWindow = 30 * time.Second
	// streamRetryMillis is the reconnection delay the stream asks EventSource clients for.
	streamRetryMillis = 2000
)

const eventStream = "text/event-stream"

// streamConfig tunes the event streams.
type streamConfig struct {
	heartbeat   time.Duration
	writeWindow time.Duration
	shutdown    <-chan struct{}
}

// handleEventStream follows the feed as server-sent events: one message per event, its
// cursor as the id, from after= or the Last-Event-ID header on. It reads a page at a time
// as the reader drains them and waits on the store's commits in between, never polling. The
// stream holds a waiting slot for its whole life.
func handleEventStream(store uts.Store, waiting waitSlots, cfg streamConfig, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := untilShutdown(r.Context(), cfg.shutdown)
		defer cancel()
		q, err := streamQuery(r)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		release, err := waiting.take()
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		defer release()

		// The first page is read before the 200, so that a cursor of another store is a 422.
		committed := store.Committed()
		events, err := store.Events(ctx, q)
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("stream events: %w", cursorError(q, err)))
			return
		}
		h := w.Header()
		h.Set("Content-Type", eventStream)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // a proxy that buffers would hold the stream back
		w.WriteHeader(http.StatusOK)

		rc := http.NewResponseController(w)
		// The deadline of the last page must not outlive the stream on a connection kept alive.
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		heartbeat := time.NewTicker(cfg.heartbeat)
		defer heartbeat.Stop()
		send := func(write func() error) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(cfg.writeWindow))
			if err := write(); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !send(func() error { _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetryMillis); return err }) {
			return
		}
		// Retention may delete events ahead of a reader that lags: each time that happens the
		// stream says so once, in an "expired" message, before the events that follow the gap.
		var reported uts.Cursor
		for {
			through, lost, err := expiredAfter(ctx, store, q.Topics, q.After)
			if err != nil {
				if ctx.Err() == nil {
					logger.ErrorContext(ctx, "event stream: read failed", "err", err)
				}
				return
			}
			if lost && through.Compare(reported) > 0 {
				reported = through
				if !send(func() error { return writeExpired(w, through) }) {
					return
				}
			}
			if len(events) > 0 {
				if !send(func() error { return writeEvents(w, events) }) {
					logger.DebugContext(ctx, "event stream dropped: the reader is gone or too slow", "after", q.After)
					return
				}
				q.After = events[len(events)-1].Cursor
			}
			if len(events) < q.Limit && !awaitCommit(ctx.Done(), cfg.shutdown, committed, heartbeat.C, func() bool {
				return send(func() error { _, err := io.WriteString(w, ": heartbeat\n\n"); return err })
			}) {
				return
			}
			committed = store.Committed() // taken before the read, so no commit in between is missed
			if events, err = store.Events(ctx, q); err != nil {
				// The 200 is sent: the client reconnects with its Last-Event-ID.
				if ctx.Err() == nil {
					logger.ErrorContext(ctx, "event stream: read failed", "err", err)
				}
				return
			}
		}
	}
}

// awaitCommit waits for a commit, beating the heart meanwhile. It is false when the stream
// is to end: the reader left, a heartbeat could not be sent, or the server is shutting down.
func awaitCommit(gone, shutdown, committed <-chan struct{}, ticks <-chan time.Time, beat func() bool) bool {
	for {
		select {
		case <-committed:
			return true
		case <-ticks:
			if !beat() {
				return false
			}
		case <-shutdown:
			return false
		case <-gone:
			return false
		}
	}
}

// writeEvents writes one message per event. The event's JSON is what /events gives
// (StoredEvent.AppendJSON), which holds no raw newline (strings escape theirs, and the
// payload is compact), so each event is one data line. One event at a time: a stalled
// reader then holds one message beside the connection's buffer, not a page.
func writeEvents(w http.ResponseWriter, events []uts.StoredEvent) error {
	var b []byte
	for i := range events {
		b = append(b[:0], "id: "...)
		b = events[i].Cursor.AppendTo(b)
		b = append(b, "\nevent: event\ndata: "...)
		b = events[i].AppendJSON(b)
		b = append(b, "\n\n"...)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// writeExpired tells the reader that events up to cursor through were deleted by retention
// before it read them. It has no id: a reconnect goes on from the last event's cursor.
func writeExpired(w http.ResponseWriter, through uts.Cursor) error {
	b := append([]byte("event: expired\ndata: {\"expired_through\":\""), through.String()...)
	_, err := w.Write(append(b, "\"}\n\n"...))
	return err
}

// streamQuery reads the stream's topics (topic= may repeat) and its start: the
// Last-Event-ID header of a reconnecting EventSource, else after=.
func streamQuery(r *http.Request) (uts.EventQuery, error) {
	params := r.URL.Query()
	q := uts.EventQuery{Limit: streamPage}
	for _, topic := range params["topic"] {
		if topic != "" {
			q.Topics = append(q.Topics, topic)
		}
	}
	if raw := params.Get("after"); raw != "" {
		c, err := cursorParam("after", raw)
		if err != nil {
			return q, err
		}
		q.After = c
	}
	if raw := r.Header.Get("Last-Event-ID"); raw != "" {
		c, err := uts.ParseCursor(raw)
		if err != nil {
			const message = "must be the id of a message of this stream"
			return q, &uts.Error{Kind: uts.KindInvalid, Message: "invalid header Last-Event-ID: " + message,
				Details: []uts.FieldError{{Field: "Last-Event-ID", Message: message}}}
		}
		q.After = c
	}
	return q, nil
}
