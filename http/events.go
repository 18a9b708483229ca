package http

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uts-events/uts"
)

const (
	defaultPageLimit = 100
	maxPageLimit     = 10_000
	// maxOffset bounds offset=: the store reads every row it skips.
	maxOffset = 100_000
	// exportChunk is how many events an NDJSON export holds in memory at once.
	exportChunk = 1000
	// exportWriteWindow bounds how long one chunk may take to reach a slow client; it moves
	// with each chunk, so a long export is not cut by the server's write timeout.
	exportWriteWindow = 30 * time.Second
)

const ndjson = "application/x-ndjson"

// handleEvents lists stored events in feed order (or, with order=desc, newest first), a
// page at a time with a Link to the next page, or all of them as NDJSON when the client asks
// for that. With wait= it holds a request that finds no event until a commit brings one,
// and then always answers with a Link, so that a follower simply follows it.
func handleEvents(store uts.Store, waiting waitSlots, shutdown <-chan struct{}, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		params := r.URL.Query()
		q, err := eventQuery(params)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		wait, err := waitParam(params.Get("wait"))
		if err == nil && wait > 0 && q.Newest {
			err = invalidParam("wait", "goes with order=asc: newest-first pages have nothing to wait for")
		}
		if err == nil && wait > 0 && q.Offset > 0 {
			err = invalidParam("offset", "goes without wait: a follower goes on from a cursor")
		}
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		if accepts(r, ndjson) {
			exportEvents(w, r, store, q, logger)
			return
		}
		if wait > 0 {
			release, err := waiting.take()
			if err != nil {
				writeError(w, r, logger, err)
				return
			}
			defer release()
		}
		page := q
		page.Limit = q.Limit + 1 // one more tells whether a next page exists
		events, err := readFeed(r.Context(), store, page, wait, shutdown)
		if err == nil && !q.Newest {
			err = markExpired(r.Context(), w.Header(), store, q.Topics, q.After)
		}
		if err != nil {
			writeError(w, r, logger, fmt.Errorf("list events: %w", cursorError(q, err)))
			return
		}
		switch {
		case len(events) > q.Limit:
			events = events[:q.Limit]
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, nextPageURL(q, events[len(events)-1].Cursor, wait)))
		case wait > 0 && len(events) > 0:
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, nextPageURL(q, events[len(events)-1].Cursor, wait)))
		case wait > 0:
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, nextPageURL(q, q.After, wait)))
		}
		if events == nil {
			events = []uts.StoredEvent{} // an empty page is [], never null
		}
		buf := getEventBuffer()
		defer putEventBuffer(buf)
		*buf = appendEventsPage(*buf, events)
		writeJSONBody(w, http.StatusOK, *buf)
	}
}

func eventQuery(params url.Values) (uts.EventQuery, error) {
	q := uts.EventQuery{Limit: defaultPageLimit}
	for _, topic := range params["topic"] { // repeated for several topics, as on the stream
		if topic != "" {
			q.Topics = append(q.Topics, topic)
		}
	}
	if raw := params.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxPageLimit {
			return q, invalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d", maxPageLimit))
		}
		q.Limit = n
	}
	if raw := params.Get("offset"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > maxOffset {
			return q, invalidParam("offset", fmt.Sprintf("must be an integer from 0 to %d; page further with the Link's cursor", maxOffset))
		}
		q.Offset = n
	}
	switch params.Get("order") {
	case "", "asc":
	case "desc":
		q.Newest = true
	default:
		return q, invalidParam("order", "must be asc (oldest first, the default) or desc (newest first)")
	}
	if raw := params.Get("after"); raw != "" {
		if q.Newest {
			return q, invalidParam("after", "goes with order=asc; newest-first pages go on with before")
		}
		c, err := cursorParam("after", raw)
		if err != nil {
			return q, err
		}
		q.After = c
	}
	if raw := params.Get("before"); raw != "" {
		if !q.Newest {
			return q, invalidParam("before", "goes with order=desc; oldest-first pages go on with after")
		}
		c, err := cursorParam("before", raw)
		if err != nil {
			return q, err
		}
		if c.IsZero() {
			return q, invalidParam("before", "must be a cursor past the start: nothing is before the start")
		}
		q.Before = c
	}
	return q, nil
}

// cursorParam reads a cursor given as the query parameter name.
func cursorParam(name, raw string) (uts.Cursor, error) {
	c, err := uts.ParseCursor(raw)
	if err != nil {
		return c, invalidParam(name, "must be a cursor from a Link header, an SSE id or a subscription")
	}
	return c, nil
}

// cursorError names the query's cursor parameter in a store's KindInvalid error, which only
// a cursor of another store causes.
func cursorError(q uts.EventQuery, err error) error {
	var e *uts.Error
	if !errors.As(err, &e) || e.Kind != uts.KindInvalid {
		return err
	}
	if q.Newest {
		return invalidParam("before", e.Message)
	}
	return invalidParam("after", e.Message)
}

// nextPageURL is the page after the one that ended at cursor last: later events, or with
// order=desc earlier ones; a follower's wait goes on in it.
func nextPageURL(q uts.EventQuery, last uts.Cursor, wait time.Duration) string {
	var b strings.Builder
	b.WriteString("/events?")
	for _, topic := range q.Topics {
		b.WriteString("topic=" + url.QueryEscape(topic) + "&")
	}
	if q.Newest {
		fmt.Fprintf(&b, "order=desc&limit=%d&before=%s", q.Limit, last)
	} else {
		fmt.Fprintf(&b, "limit=%d&after=%s", q.Limit, last)
	}
	if wait > 0 {
		b.WriteString("&wait=" + wait.String())
	}
	return b.String()
}

// exportEvents streams every matching event from q.After on (with q.Newest, from q.Before
// down), ignoring q.Limit, one chunk in memory at a time. Oldest first, it checks after each
// chunk whether retention deleted events after the cursor it read from: before the first
// chunk the Expired-Through header says so; later, only breaking the stream off can.
func exportEvents(w http.ResponseWriter, r *http.Request, store uts.Store, q uts.EventQuery, logger *slog.Logger) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	q.Limit = exportChunk
	buf := getEventBuffer()
	defer putEventBuffer(buf)
	started := false
	var reported uts.Cursor // the Expired-Through header sent, if any
	for {
		events, err := store.Events(ctx, q)
		var through uts.Cursor
		var lost bool
		if err == nil && !q.Newest {
			through, lost, err = expiredAfter(ctx, store, q.Topics, q.After)
		}
		if err != nil {
			if !started {
				writeError(w, r, logger, fmt.Errorf("export events: %w", err))
				return
			}
			// The 200 is sent; only a broken stream tells the client the export is incomplete.
			logger.ErrorContext(ctx, "export events failed mid-stream", "err", err)
			panic(http.ErrAbortHandler)
		}
		switch {
		case lost && !started:
			w.Header().Set(expiredHeader, through.String())
			reported = through
		case lost && through.Compare(reported) > 0:
			// Retention deleted events ahead of the export after its header was sent: the
			// header cannot say so any more, a broken stream can.
			logger.InfoContext(ctx, "export events overtaken by retention", "after", q.After, "expired_through", through)
			panic(http.ErrAbortHandler)
		}
		if !started {
			w.Header().Set("Content-Type", ndjson)
			w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
		*buf = appendEventLines((*buf)[:0], events)
		if _, err := w.Write(*buf); err != nil {
			return // the client went away
		}
		if err := rc.Flush(); err != nil || len(events) < q.Limit {
			return
		}
		q.After, q.Before = events[len(events)-1].Cursor, events[len(events)-1].Cursor
		q.Offset = 0 // skipped once, before the first chunk
	}
}

// accepts reports whether the Accept header names mediaType, other than with q=0.
func accepts(r *http.Request, mediaType string) bool {
	for _, header := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(header, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != mediaType {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				continue
			}
			return true
		}
	}
	return false
}
