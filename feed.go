package uts

import (
	"cmp"
	"strconv"
	"strings"
)

// Cursor is a position in the feed: the stored events in the order in which they became
// readable. A reader that asks for the events after a cursor, again and again, sees every
// stored event exactly once, however many writers commit concurrently and in whatever order
// their transactions end.
//
// Seq is the event's sequence number. Tx orders before it where transactions can commit out
// of sequence order: on PostgreSQL it is the id of the transaction that stored the event,
// and a store hands out no event at or above the oldest transaction still in flight, so an
// event that commits later always sorts after every cursor handed out before. On SQLite one
// writer commits at a time, sequence order is already commit order, and Tx is 0.
//
// Clients see a cursor only as an opaque string (String, ParseCursor).
type Cursor struct {
	Tx  uint64
	Seq int64
}

// IsZero reports whether c is the start of the feed.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// Compare orders cursors as the feed does: by Tx, then Seq.
func (c Cursor) Compare(o Cursor) int {
	if n := cmp.Compare(c.Tx, o.Tx); n != 0 {
		return n
	}
	return cmp.Compare(c.Seq, o.Seq)
}

// String is the cursor as clients see it. A cursor with no Tx is its sequence number alone,
// the form every cursor had before Tx existed, so that those keep working: on PostgreSQL
// the events stored before then have Tx 0 and sort first, in sequence order.
func (c Cursor) String() string { return string(c.AppendTo(nil)) }

// AppendTo appends the cursor as String writes it, for encoders that build a page in one
// buffer.
func (c Cursor) AppendTo(b []byte) []byte {
	if c.Tx != 0 {
		b = strconv.AppendUint(b, c.Tx, 10)
		b = append(b, '-')
	}
	return strconv.AppendInt(b, c.Seq, 10)
}

// ParseCursor reads a cursor written by String. The error, of KindInvalid, says what a
// cursor is without naming the parameter it came in; callers add that.
func ParseCursor(s string) (Cursor, error) {
	bad := Errorf(KindInvalid, "%q is not a cursor: use one from a Link header, an SSE id or a subscription", s)
	tx, seq, hasTx := strings.Cut(s, "-")
	if !hasTx {
		tx, seq = "0", s
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil || (hasTx && t == 0) {
		return Cursor{}, bad
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 0 {
		return Cursor{}, bad
	}
	return Cursor{Tx: t, Seq: n}, nil
}

func (c Cursor) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Cursor) UnmarshalText(b []byte) error {
	parsed, err := ParseCursor(string(b))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}
