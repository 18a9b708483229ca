package http

import (
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/uts-events/uts"
)

// The event answers (subscription pages, /events pages, the NDJSON export) are written with
// uts.StoredEvent.AppendJSON instead of writeJSON's reflection, which with the re-validation
// of each payload was about a fifth of the CPU of serving a page. Each function appends
// exactly what writeJSON's encoder writes for the same value; eventjson_test.go holds them to
// it.

// appendEventWithCursor appends the event as a subscription page or an SSE message shows
// it: the stored event with its "cursor" last (subscriptionEvent's JSON).
func appendEventWithCursor(b []byte, e uts.StoredEvent) []byte {
	b = e.AppendJSON(b)
	b = append(b[:len(b)-1], `,"cursor":"`...) // the cursor goes inside the event's object
	b = e.Cursor.AppendTo(b)
	return append(b, `"}`...)
}

// appendSubscriptionPage appends a subscription read's answer (subscriptionEvents) and the
// newline writeJSON ends with: the events with their cursors, and the cursor to commit.
func appendSubscriptionPage(b []byte, events []uts.StoredEvent, cursor uts.Cursor) []byte {
	b = growForEvents(b, events)
	b = append(b, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEventWithCursor(b, e)
		cursor = e.Cursor
	}
	b = append(b, `],"cursor":"`...)
	b = cursor.AppendTo(b)
	return append(b, "\"}\n"...)
}

// appendEventsPage appends an /events page, a JSON array of stored events, and the newline.
func appendEventsPage(b []byte, events []uts.StoredEvent) []byte {
	b = growForEvents(b, events)
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.AppendJSON(b)
	}
	return append(b, "]\n"...)
}

// appendEventLines appends the events as NDJSON, one line each, as the export writes them.
func appendEventLines(b []byte, events []uts.StoredEvent) []byte {
	b = growForEvents(b, events)
	for _, e := range events {
		b = e.AppendJSON(b)
		b = append(b, '\n')
	}
	return b
}

// eventJSONOverhead is an event's JSON beyond its strings and payload: the member names, two
// timestamps with nanoseconds and an offset, and a cursor.
const eventJSONOverhead = 200

// growForEvents makes room for the events at once: growing a page of megabytes by doubling
// copied it over and over, and the pool's buffers do not outlive two collections.
func growForEvents(b []byte, events []uts.StoredEvent) []byte {
	n := 16
	for _, e := range events {
		n += len(e.Topic) + len(e.EventID) + len(e.Source) + len(e.Payload) + eventJSONOverhead
	}
	return slices.Grow(b, n)
}

// writeJSONBody sends a JSON body built by the append functions, with its length: a client
// then reads a page of megabytes in one allocation instead of growing a buffer.
func writeJSONBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the status is sent; an error now means the client went away
}

// eventBuffers recycles the buffers pages are built in: a page of 10,000 events is a few
// megabytes, and allocating it anew for every read made work for the collector.
var eventBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer keeps an occasional page of huge payloads from pinning its memory.
const maxPooledBuffer = 16 << 20

func getEventBuffer() *[]byte { return eventBuffers.Get().(*[]byte) }

func putEventBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	eventBuffers.Put(b)
}
