package http

import (
	"context"
	"fmt"
	"net/http"

	"github.com/uts-events/uts"
)

// expiredHeader tells a reader that retention deleted events after its cursor, before it
// read them: the page it got goes on from the oldest event still held, and the header's
// value is the greatest cursor of the events it lost. A follower that sees it has a gap
// to report; one that never does has seen every stored event.
const expiredHeader = "Expired-Through"

// expiredAfter returns the greatest expired cursor of topics when it lies after the reader's
// cursor, and ok false when the reader lost nothing. It is read after the page: an event
// that expired before the page was read is then always reported with it.
func expiredAfter(ctx context.Context, store uts.Store, topics []string, after uts.Cursor) (through uts.Cursor, ok bool, err error) {
	through, err = store.ExpiredThrough(ctx, topics)
	if err != nil {
		return through, false, fmt.Errorf("read the expired cursor: %w", err)
	}
	return through, through.Compare(after) > 0, nil
}

// markExpired sets expiredHeader on a page read from after on, when events were lost there.
func markExpired(ctx context.Context, h http.Header, store uts.Store, topics []string, after uts.Cursor) error {
	through, lost, err := expiredAfter(ctx, store, topics, after)
	if err == nil && lost {
		h.Set(expiredHeader, through.String())
	}
	return err
}
