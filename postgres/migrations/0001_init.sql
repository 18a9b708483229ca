-- Each (topic, event_id) is stored once: the unique key is what finds duplicates, within a
-- batch, across batches, across workers and across replicas. Topics and ids are identifiers,
-- compared byte by byte (COLLATE "C"): that is their meaning, and it is much cheaper for the
-- indexes than a linguistic collation.
CREATE TABLE events (
    seq          bigserial   PRIMARY KEY, -- processing order; the listing's cursor
    topic        text        COLLATE "C" NOT NULL,
    event_id     text        COLLATE "C" NOT NULL,
    ts           timestamptz NOT NULL,
    ts_nanos     smallint    NOT NULL,    -- timestamptz keeps microseconds; these are the rest
    source       text        NOT NULL,
    payload      text        NOT NULL,    -- not jsonb: jsonb rejects \u0000 and reorders keys
    content_hash bytea       NOT NULL,    -- sha256 of Event.ContentHash: tells retries from conflicts
    processed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_topic_event_id_key UNIQUE (topic, event_id)
);

-- Listing one topic's events in processing order.
CREATE INDEX events_topic_seq ON events (topic, seq);

-- Per-topic totals, split into shards so that concurrent batches of one topic do not queue
-- on one row. A batch adds to one shard; readers sum the shards. The global counters are
-- sums of these (received = unique + duplicates, plus dead letters), so no other row is
-- written per batch.
CREATE TABLE topic_counters (
    topic         text        COLLATE "C" NOT NULL,
    shard         smallint    NOT NULL,
    unique_count  bigint      NOT NULL,
    duplicates    bigint      NOT NULL, -- including conflicts
    conflicts     bigint      NOT NULL,
    last_event_at timestamptz,          -- processed_at of the shard's latest new event
    PRIMARY KEY (topic, shard)
);

-- Events a broker gave up on, sharded like topic_counters.
CREATE TABLE dead_letters (
    shard smallint PRIMARY KEY,
    count bigint   NOT NULL
);

-- committed_content_hash reads a key's content hash with a fresh snapshot. In READ COMMITTED,
-- INSERT ... ON CONFLICT DO NOTHING skips a key that a concurrent transaction committed after
-- the statement's snapshot was taken, yet that snapshot cannot see the row. A VOLATILE
-- function takes a new snapshot for each query it runs, so it sees that row.
CREATE FUNCTION committed_content_hash(p_topic text, p_event_id text) RETURNS bytea
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT content_hash FROM events WHERE topic = p_topic AND event_id = p_event_id);
END
$$;
