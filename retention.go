package uts

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention says how long a store keeps events and their fingerprints. A zero duration is
// for ever, the default: a store without retention keeps everything, as it always did.
//
// Expiring an event deletes its payload, never its identity: the event's fingerprint (see
// Fingerprint) stays, so a late duplicate of it is still a duplicate, and a changed one
// still a conflict. Fingerprints expire only under Fingerprints, for users who want a
// deduplication window instead of deduplication for ever.
type Retention struct {
	// Events is how long an event is kept after it was processed, in every topic that
	// Topics does not name.
	Events time.Duration
	// Topics holds each named topic's own retention, which may be longer or shorter than
	// Events; zero keeps that topic's events for ever.
	Topics map[string]time.Duration
	// Fingerprints is how long a fingerprint is kept after its event was processed. It must
	// be at least every event retention (Validate): a fingerprint forgotten while its event
	// is still stored would let a duplicate in.
	Fingerprints time.Duration
}

// For is the retention of topic's events; zero is for ever.
func (r Retention) For(topic string) time.Duration {
	if d, ok := r.Topics[topic]; ok {
		return d
	}
	return r.Events
}

// ExpiresEvents reports whether any event can ever expire under r.
func (r Retention) ExpiresEvents() bool {
	if r.Events > 0 {
		return true
	}
	for _, d := range r.Topics {
		if d > 0 {
			return true
		}
	}
	return false
}

// IsForever reports whether r keeps everything, so that nothing needs to run.
func (r Retention) IsForever() bool { return !r.ExpiresEvents() && r.Fingerprints == 0 }

// Longest is the longest event retention of any topic, and whether some topic keeps its
// events for ever (then the duration means nothing).
func (r Retention) Longest() (d time.Duration, forever bool) {
	d = r.Events
	forever = r.Events == 0
	for _, t := range r.Topics {
		if t == 0 {
			forever = true
		}
		d = max(d, t)
	}
	return d, forever
}

// Validate refuses negative durations and a fingerprint retention shorter than an event
// retention.
func (r Retention) Validate() error {
	if r.Events < 0 {
		return Errorf(KindInvalid, "retention %s is negative", r.Events)
	}
	for _, topic := range slices.Sorted(maps.Keys(r.Topics)) {
		if r.Topics[topic] < 0 {
			return Errorf(KindInvalid, "retention of topic %q is negative", topic)
		}
	}
	if r.Fingerprints < 0 {
		return Errorf(KindInvalid, "deduplication retention %s is negative", r.Fingerprints)
	}
	if r.Fingerprints == 0 {
		return nil
	}
	longest, forever := r.Longest()
	if forever || longest > r.Fingerprints {
		keep := "for ever"
		if !forever {
			keep = FormatRetention(longest)
		}
		return Errorf(KindInvalid, "deduplication retention %s is shorter than the event retention (%s): "+
			"a duplicate of an event still stored would be stored again", FormatRetention(r.Fingerprints), keep)
	}
	return nil
}

// ParseRetention reads an event retention as the -retention flag and UTS_RETENTION take it:
// a comma-separated list of DURATION (every topic) and TOPIC=DURATION (one topic), for
// example "30d,orders=7d". It adds to events and topics, so a repeated flag accumulates.
func ParseRetention(s string, events *time.Duration, topics map[string]time.Duration) error {
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		topic, value, perTopic := strings.Cut(part, "=")
		d, err := ParseRetentionDuration(value)
		if !perTopic {
			d, err = ParseRetentionDuration(part)
		}
		if err != nil {
			return err
		}
		if !perTopic {
			*events = d
			continue
		}
		if msg := nameProblem(topic); msg != "" {
			return Errorf(KindInvalid, "retention %q: the topic %s", part, msg)
		}
		topics[topic] = d
	}
	return nil
}

// ParseRetentionDuration reads a duration as Go writes one ("36h", "90m"), or a whole
// number of days ("7d"); "0" and "forever" are for ever.
func ParseRetentionDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "forever" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, Errorf(KindInvalid, "retention %q: days must be a whole number from 1 to 36500", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, Errorf(KindInvalid, "retention %q is not a duration: write 30d, 12h, 90m, or forever", s)
	}
	return d, nil
}

// FormatRetention writes d as ParseRetentionDuration reads it, in days when it is whole days.
func FormatRetention(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return "forever"
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// String writes r as ParseRetention reads it, topics sorted.
func (r Retention) String() string {
	parts := []string{FormatRetention(r.Events)}
	for _, topic := range slices.Sorted(maps.Keys(r.Topics)) {
		parts = append(parts, topic+"="+FormatRetention(r.Topics[topic]))
	}
	return strings.Join(parts, ",")
}
