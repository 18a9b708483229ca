package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uts-events/uts"
)

// appendSQL stores a batch and counts it in one statement: one round trip, one implicit
// transaction. Go does all it can before the statement, so that PostgreSQL only does what
// needs the table: Go finds the batch's keys, sorts them, counts per topic what the batch
// would count if every key were new, and after the statement works out each event's
// outcome from the few keys the statement did not insert.
//
// The input ($1 to $9, $18 to $20) is one row per key of the batch, sorted by the key's
// fingerprint (uts.KeyFingerprint, $18, byte order as uuid compares), so that every batch
// locks fingerprints in the same order and none waits on another in a cycle; ORDER BY ord
// makes that order a promise of the plan, at no cost (the planner knows that WITH
// ORDINALITY numbers rows in order, and does not sort). Each row is the key's first
// occurrence, the only one offered for insertion, with its rank among the batch's keys in
// batch order (sequence numbers are drawn in that order, so that processing order is batch
// order), its content tag ($19, uts.ContentTag), "same", how many of the key's occurrences
// have the first one's content, and "sametag" ($20), how many have the first one's tag. The
// other tags a key has in the batch ($10 to $12, rarely any) are given with their number of
// occurrences.
//
// The fingerprints decide what is new (see migrations/0006_retention.sql): a fingerprint
// outlives its event, so a key whose event expired is still no new key. The events whose
// fingerprint the statement inserted are stored.
//
// The counters ($13 to $15 and $17, one row per topic, sorted) are given as Go counts them
// assuming every key new: received, conflicts (occurrences whose content differs from the
// first) and keys, each new. The statement corrects them by what it finds: a key whose
// fingerprint it did not insert ("skipped": stored before, by this statement's snapshot or,
// failing that, by a fresh one, see committed_fingerprint in the migrations) is not new, and
// its occurrences are compared with the stored content tag instead. Most batches skip none,
// and then the statement reads nothing back.
// Outcomes: 1 new, 2 duplicate, 3 conflict (see uts.Outcome), from the returned skipped keys.
//
// A batch with deliveries (a Redis consumer's) records them first, sorted too ($21 to $23,
// one row per delivery, with its first event's key; $24 to $28 are the events that have
// one): an event whose delivery was recorded before is "redelivered", stored and counted by
// the transaction that recorded it, so it is not counted again, answers duplicate, and its
// key is offered for insertion only if another occurrence of it comes first. Its key is
// stored (that transaction stored it or found it), so the other occurrences of the key find
// the stored content.
//
// The joins of the batch's rows match ranks and fingerprints, not text keys. Each step reads
// all that the one before returned (through an aggregate, a hash or a one-time filter)
// before it writes, so the locks are taken in order: deliveries, fingerprints, counters.
var (
	appendSQL          = assembleAppend(appendKeysSQL, "", appendResultSQL)
	appendDeliveredSQL = assembleAppend(appendDeliveredKeysSQL, appendRedeliveredSQL, appendDeliveredResultSQL)
)

// assembleAppend puts a statement together from its parts; a batch with deliveries has a
// part more in its corrections.
func assembleAppend(keys, redelivered, result string) string {
	return strings.NewReplacer("{{input}}", appendInputSQL, "{{redelivered}}", redelivered).
		Replace(appendSeqsSQL + keys + appendCountsSQL + result)
}

// appendInputSQL is the batch's keys, read where they are needed rather than as a CTE,
// which would copy every row, payload and all.
const appendInputSQL = `unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[], $5::int2[], $6::text[],
                $7::text[], $8::bytea[], $18::uuid[]) WITH ORDINALITY
        AS i(rank, topic, event_id, ts, ts_nanos, source, payload, content_hash, key, ord)`

const appendSeqsSQL = `
WITH seqs AS (
    -- One number per key, handed out by rank: the i-th smallest to rank i.
    SELECT array_agg(seq ORDER BY seq) AS seq
    FROM (SELECT nextval('events_seq_seq') AS seq FROM generate_series(1, cardinality($1::int[]))) n
),`

const appendKeysSQL = `
fingerprinted AS (
    INSERT INTO fingerprints (key, content, at)
    SELECT key, tag, floor(extract(epoch FROM now()) / 60)::int4
    FROM unnest($18::uuid[], $19::int4[]) WITH ORDINALITY AS f(key, tag, ord)
    ORDER BY ord
    ON CONFLICT (key) DO NOTHING
    RETURNING key
),` + appendEventsSQL

// appendEventsSQL stores the events whose fingerprint the statement inserted: the events
// table has no unique key (it is partitioned by time, see migrations/0006_retention.sql),
// the fingerprints decide. No statement reads what it inserts; it runs all the same.
const appendEventsSQL = `
inserted AS (
    INSERT INTO events (seq, topic, event_id, ts, ts_nanos, source, payload, content_hash)
    SELECT (SELECT seq FROM seqs)[i.rank], i.topic, i.event_id, i.ts, i.ts_nanos, i.source, i.payload, i.content_hash
    FROM {{input}}
    WHERE i.key IN (SELECT key FROM fingerprinted)
),`

// appendDeliveredKeysSQL takes the deliveries as $21 to $23 (delivery, and its first event's
// topic and event_id), and the events with a delivery as $24 to $28: the delivery, topic,
// key rank and content tag, and whether it is the key's first occurrence.
const appendDeliveredKeysSQL = `
recorded AS (
    INSERT INTO deliveries (delivery, topic, event_id)
    SELECT delivery, topic, event_id
    FROM unnest($21::text[], $22::text[], $23::text[]) WITH ORDINALITY AS d(delivery, topic, event_id, ord)
    ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING delivery
),
redelivered AS (
    -- A delivery is one unit in a batch, so the delivery alone finds its row. Most often
    -- every delivery is recorded, and then none needs looking for.
    SELECT d.ord, d.topic, d.rank, d.tag, d.first
    FROM unnest($24::text[], $25::text[], $26::int[], $27::int4[], $28::bool[]) WITH ORDINALITY
        AS d(delivery, topic, rank, tag, first, ord)
    WHERE (SELECT count(*) FROM recorded) < cardinality($21::text[])
      AND NOT EXISTS (SELECT FROM recorded r WHERE r.delivery = d.delivery)
),
fingerprinted AS (
    INSERT INTO fingerprints (key, content, at)
    SELECT f.key, f.tag, floor(extract(epoch FROM now()) / 60)::int4
    FROM unnest($18::uuid[], $19::int4[], $1::int[]) WITH ORDINALITY AS f(key, tag, rank, ord)
    -- Reading every redelivered event first (and so every recorded delivery) keeps
    -- deliveries before keys in the lock order.
    WHERE f.rank NOT IN (SELECT rank FROM redelivered WHERE first)
    ORDER BY f.ord
    ON CONFLICT (key) DO NOTHING
    RETURNING key
),` + appendEventsSQL

// appendCountsSQL follows either keys part: it reads "inserted" and, in a batch with
// deliveries, "redelivered" through appendRedeliveredSQL.
const appendCountsSQL = `
skipped AS (
    SELECT i.rank, i.topic, i.tag, i.same, i.sametag,
           COALESCE((SELECT f.content FROM fingerprints f WHERE f.key = i.key),
                    committed_fingerprint(i.key)) AS stored
    FROM unnest($1::int[], $2::text[], $18::uuid[], $19::int4[], $9::int[], $20::int[])
        AS i(rank, topic, key, tag, same, sametag)
    -- Most often every key is inserted, and then nothing needs comparing.
    WHERE (SELECT count(*) FROM fingerprinted) < cardinality($1::int[])
      AND NOT EXISTS (SELECT FROM fingerprinted x WHERE x.key = i.key)
),
corrections AS (
    -- A skipped key's occurrences are compared with the stored content tag, not the first's
    -- content: "same" of them were counted as matching the first, and those whose tag is the
    -- stored one match now (sametag have the first's tag; a variant holds each other tag).
    SELECT s.topic, 1 AS skipped, 0 AS received,
           s.same - CASE WHEN s.stored = s.tag THEN s.sametag ELSE COALESCE(v.count, 0) END AS conflicts
    FROM skipped s
    LEFT JOIN unnest($10::int[], $11::int4[], $12::int[]) AS v(rank, tag, count)
        ON v.rank = s.rank AND v.tag = s.stored{{redelivered}}
),
counted AS (
    INSERT INTO topic_counters AS c (topic, shard, unique_count, duplicates, conflicts, last_event_at)
    SELECT topic, $16, keys - skipped, received - (keys - skipped), conflicts,
           CASE WHEN keys > skipped THEN now() END
    FROM (SELECT t.ord, t.topic, t.keys, COALESCE(k.skipped, 0) AS skipped,
                 t.received + COALESCE(k.received, 0) AS received,
                 t.conflicts + COALESCE(k.conflicts, 0) AS conflicts
          FROM unnest($13::text[], $14::bigint[], $15::bigint[], $17::bigint[]) WITH ORDINALITY
              AS t(topic, received, conflicts, keys, ord)
          LEFT JOIN (SELECT topic, sum(skipped)::bigint AS skipped, sum(received)::bigint AS received,
                            sum(conflicts)::bigint AS conflicts
                     FROM corrections GROUP BY topic) k ON k.topic = t.topic) t
    WHERE received > 0
    ORDER BY ord
    ON CONFLICT (topic, shard) DO UPDATE SET
        unique_count  = c.unique_count + excluded.unique_count,
        duplicates    = c.duplicates + excluded.duplicates,
        conflicts     = c.conflicts + excluded.conflicts,
        last_event_at = greatest(c.last_event_at, excluded.last_event_at)
)`

// appendRedeliveredSQL is added to the corrections of a batch with deliveries: a redelivered
// event is not counted, neither received nor, against the stored content, a conflict.
const appendRedeliveredSQL = `
    UNION ALL
    SELECT rd.topic, 0, -1, CASE WHEN s.stored IS DISTINCT FROM rd.tag THEN -1 ELSE 0 END
    FROM redelivered rd
    LEFT JOIN skipped s ON s.rank = rd.rank`

const (
	appendResultSQL = `
SELECT (SELECT array_agg(rank) FROM skipped), (SELECT array_agg(stored) FROM skipped), NULL::int[]`
	appendDeliveredResultSQL = `
SELECT (SELECT array_agg(rank) FROM skipped), (SELECT array_agg(stored) FROM skipped),
       (SELECT array_agg(ord) FROM redelivered)`
)

// Append stores the batch's new events and counts all of them in one statement; see the
// package documentation for why that is exact under concurrency.
func (s *Store) Append(ctx context.Context, events []uts.Event) ([]uts.Outcome, error) {
	if len(events) == 0 {
		return []uts.Outcome{}, nil
	}
	b, err := layOut(events)
	if err != nil {
		return nil, err
	}
	var (
		skipped     []int32
		stored      []*int32
		redelivered []int32
	)
	if s.commitDelay != nil {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, b.query, b.args...).Scan(&skipped, &stored, &redelivered); err != nil {
				return err
			}
			time.Sleep(s.commitDelay())
			return nil
		})
	} else {
		err = s.pool.QueryRow(ctx, b.query, b.args...).Scan(&skipped, &stored, &redelivered)
	}
	if err != nil {
		return nil, wrap("append", err)
	}
	outcomes, err := b.outcomes(skipped, stored, redelivered)
	if slices.Contains(outcomes, uts.OutcomeNew) {
		s.committed.Notify()
		s.replicas.committed()
	}
	return outcomes, err
}

// appendStatement returns the statement for the batch and its arguments.
func appendStatement(events []uts.Event) (string, []any, error) {
	b, err := layOut(events)
	if err != nil {
		return "", nil, err
	}
	return b.query, b.args, nil
}

// appendBatch is a batch laid out for its statement.
type appendBatch struct {
	events []uts.Event
	hashes [][]byte // each event's content hash
	tags   []int32  // each event's content tag (uts.ContentTag), as the int4 that holds it
	rank   []int32  // each event's key, numbered from 1 in order of first occurrence
	first  []int    // each key's first occurrence, by rank-1
	// delivered are the events with a delivery, in the statement's order of them.
	delivered []int
	query     string
	args      []any
}

// layOut finds the batch's keys, sorts them, and counts what it can before the statement.
func layOut(events []uts.Event) (*appendBatch, error) {
	n := len(events)
	b := &appendBatch{
		events: events,
		hashes: make([][]byte, n),
		tags:   make([]int32, n),
		rank:   make([]int32, n),
		first:  make([]int, 0, n),
	}
	rankOf := make(map[uts.Key]int32, n)
	for i := range events {
		e := &events[i]
		hash, err := hex.DecodeString(e.ContentHash())
		if err != nil {
			return nil, fmt.Errorf("postgres: content hash: %w", err)
		}
		b.hashes[i] = hash
		b.tags[i] = int32(binary.BigEndian.Uint32(hash[:4]))
		r, ok := rankOf[e.Key()]
		if !ok {
			b.first = append(b.first, i)
			r = int32(len(b.first))
			rankOf[e.Key()] = r
		}
		b.rank[i] = r
	}

	// Per key: how many occurrences have the first one's content, and its tag, and the
	// other tags.
	keys := len(b.first)
	same := make([]int32, keys)
	sameTag := make([]int32, keys)
	type variant struct {
		rank int32
		tag  int32
	}
	var (
		variants     map[variant]int32
		variantOrder []variant
	)
	type topicCount struct{ received, conflicts, keys int64 }
	topics := make(map[string]*topicCount, 8)
	for i := range events {
		r := b.rank[i]
		t := topics[events[i].Topic]
		if t == nil {
			t = &topicCount{}
			topics[events[i].Topic] = t
		}
		t.received++
		if b.first[r-1] == i {
			t.keys++
		}
		if string(b.hashes[i]) == string(b.hashes[b.first[r-1]]) {
			same[r-1]++
		} else {
			t.conflicts++
		}
		if b.tags[i] == b.tags[b.first[r-1]] {
			sameTag[r-1]++
			continue
		}
		if variants == nil {
			variants = make(map[variant]int32)
		}
		v := variant{r, b.tags[i]}
		if variants[v] == 0 {
			variantOrder = append(variantOrder, v)
		}
		variants[v]++
	}

	fingerprints := make([][16]byte, keys) // by rank-1
	byKey := make([]int32, keys)           // ranks sorted by fingerprint
	for r := range byKey {
		byKey[r] = int32(r + 1)
		fingerprints[r] = uts.KeyFingerprint(events[b.first[r]].Key())
	}
	slices.SortFunc(byKey, func(x, y int32) int {
		return bytes.Compare(fingerprints[x-1][:], fingerprints[y-1][:])
	})
	var (
		ranks    = make([]int32, keys)
		ktopics  = make([]string, keys)
		ids      = make([]string, keys)
		stamps   = make([]time.Time, keys)
		nanos    = make([]int16, keys)
		sources  = make([]string, keys)
		payloads = make([]string, keys)
		hashes   = make([][]byte, keys)
		sames    = make([]int32, keys)
		fps      = make([][16]byte, keys)
		tags     = make([]int32, keys)
		sameTags = make([]int32, keys)
	)
	for k, r := range byKey {
		i := b.first[r-1]
		e := &events[i]
		ts := e.Timestamp.UTC()
		ranks[k], ktopics[k], ids[k] = r, e.Topic, e.EventID
		stamps[k], nanos[k] = ts.Truncate(time.Microsecond), int16(ts.Nanosecond()%1000)
		sources[k], payloads[k], hashes[k], sames[k] = e.Source, string(e.Payload), b.hashes[i], same[r-1]
		fps[k], tags[k], sameTags[k] = fingerprints[r-1], b.tags[i], sameTag[r-1]
	}

	vRanks := make([]int32, len(variantOrder))
	vTags := make([]int32, len(variantOrder))
	vCounts := make([]int32, len(variantOrder))
	for j, v := range variantOrder {
		vRanks[j], vTags[j], vCounts[j] = v.rank, v.tag, variants[v]
	}

	topicNames := make([]string, 0, len(topics))
	for t := range topics {
		topicNames = append(topicNames, t)
	}
	slices.Sort(topicNames)
	received := make([]int64, len(topicNames))
	conflicts := make([]int64, len(topicNames))
	topicKeys := make([]int64, len(topicNames))
	for j, t := range topicNames {
		received[j], conflicts[j], topicKeys[j] = topics[t].received, topics[t].conflicts, topics[t].keys
	}

	b.args = []any{ranks, ktopics, ids, stamps, nanos, sources, payloads, hashes, sames,
		vRanks, vTags, vCounts, topicNames, received, conflicts, rand.IntN(counterShards), topicKeys,
		fps, tags, sameTags}
	b.query = appendSQL
	if err := b.layOutDeliveries(); err != nil {
		return nil, err
	}
	return b, nil
}

// layOutDeliveries adds the deliveries' arguments, if any event has a delivery (as with the
// Redis broker; the in-process broker's have none). Events that share a delivery are one
// unit (see uts.Event.Delivery), recorded once with the key of its first event.
func (b *appendBatch) layOutDeliveries() error {
	events := b.events
	for i := range events {
		if events[i].Delivery != "" {
			b.delivered = append(b.delivered, i)
		}
	}
	if b.delivered == nil {
		return nil
	}
	// Sorted so that every batch locks deliveries in the same order; stable, so that each
	// delivery's events stay in batch order and its first event comes first.
	slices.SortStableFunc(b.delivered, func(x, y int) int { return cmp.Compare(events[x].Delivery, events[y].Delivery) })
	n := len(b.delivered)
	var (
		units      = make([]string, 0, n)
		unitTopics = make([]string, 0, n)
		unitIDs    = make([]string, 0, n)
		deliveries = make([]string, n)
		topics     = make([]string, n)
		ranks      = make([]int32, n)
		tags       = make([]int32, n)
		firsts     = make([]bool, n)
	)
	for j, i := range b.delivered {
		e := &events[i]
		if j == 0 || e.Delivery != deliveries[j-1] {
			units, unitTopics, unitIDs = append(units, e.Delivery), append(unitTopics, e.Topic), append(unitIDs, e.EventID)
		}
		deliveries[j], topics[j], ranks[j], tags[j] = e.Delivery, e.Topic, b.rank[i], b.tags[i]
		firsts[j] = b.first[b.rank[i]-1] == i
	}
	b.args = append(b.args, units, unitTopics, unitIDs, deliveries, topics, ranks, tags, firsts)
	b.query = appendDeliveredSQL
	return nil
}

// outcomes works out each event's outcome from what the statement returned: the keys it did
// not insert with the content tag stored for them (nil when none was found), and the
// positions (1-based, in the statement's order of deliveries) of the redelivered events.
// An occurrence of a skipped key is compared with the stored tag, as the statement counts
// it; one of a new key with the first occurrence's content.
func (b *appendBatch) outcomes(skipped []int32, stored []*int32, redelivered []int32) ([]uts.Outcome, error) {
	if len(skipped) != len(stored) {
		return nil, fmt.Errorf("postgres: append: %d skipped keys and %d stored contents", len(skipped), len(stored))
	}
	// storedOf[rank-1] is the content tag stored for a skipped key; found says which were.
	storedOf := make([]*int32, len(b.first))
	found := make([]bool, len(b.first))
	for j, r := range skipped {
		if r < 1 || int(r) > len(b.first) {
			return nil, fmt.Errorf("postgres: append: skipped key %d of %d", r, len(b.first))
		}
		storedOf[r-1], found[r-1] = stored[j], true
	}
	outcomes := make([]uts.Outcome, len(b.events))
	for _, d := range redelivered {
		if d < 1 || int(d) > len(b.delivered) {
			return nil, fmt.Errorf("postgres: append: redelivered delivery %d of %d", d, len(b.delivered))
		}
		outcomes[b.delivered[d-1]] = uts.OutcomeDuplicate
	}
	for i := range b.events {
		if outcomes[i] != 0 {
			continue
		}
		r := b.rank[i]
		var same bool
		switch {
		case found[r-1]:
			// A nil stored tag (none found) is a conflict, as the counters take it.
			same = storedOf[r-1] != nil && *storedOf[r-1] == b.tags[i]
		case b.first[r-1] == i:
			outcomes[i] = uts.OutcomeNew
			continue
		default:
			same = string(b.hashes[b.first[r-1]]) == string(b.hashes[i])
		}
		if same {
			outcomes[i] = uts.OutcomeDuplicate
		} else {
			outcomes[i] = uts.OutcomeConflict
		}
	}
	return outcomes, nil
}

// deadLetterSQL counts $2 events in shard $1, once per delivery $3 (see uts.Store): the
// delivery goes in first, under the empty key no event has, and the count only if it was
// new. A replica dead-lettering the same entry at once waits on the first's row, then finds
// it and counts nothing.
const deadLetterSQL = `
WITH recorded AS (
    INSERT INTO deliveries (delivery, topic, event_id)
    SELECT $3, '', '' WHERE $3 <> ''
    ON CONFLICT DO NOTHING
    RETURNING 1
)
INSERT INTO dead_letters AS d (shard, count)
SELECT $1, $2 WHERE $3 = '' OR EXISTS (SELECT FROM recorded)
ON CONFLICT (shard) DO UPDATE SET count = d.count + excluded.count`

// DeadLetter counts n events a broker gave up on, in a random shard like Append's counters,
// once per delivery.
func (s *Store) DeadLetter(ctx context.Context, delivery string, n int) error {
	if n < 0 {
		return fmt.Errorf("postgres: dead letter: negative count %d", n)
	}
	if n == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, deadLetterSQL, rand.IntN(counterShards), n, delivery)
	if err != nil {
		return wrap("dead letter", err)
	}
	return nil
}
