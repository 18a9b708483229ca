-- Retention (uts.Retention): events expire, their identities do not.
--
-- The fingerprints table becomes the deduplication authority: one row per key ever stored,
-- written by the append in its transaction. An expired event's fingerprint stays, so a late
-- duplicate is still a duplicate and a changed one a conflict. Rows are kept small: the key is
-- uts.KeyFingerprint (16 bytes, a uuid has no length header), the content uts.ContentTag, and
-- the minute the event was processed (minutes since the epoch), for the deduplication window
-- (Retention.Fingerprints).
CREATE TABLE fingerprints (
    key     uuid NOT NULL,
    content int4 NOT NULL, -- uts.ContentTag, as a signed int4 of the same 32 bits
    at      int4 NOT NULL  -- minutes since 1970-01-01 UTC
);

-- uvarint is encoding/binary's unsigned varint of n, as uts.KeyFingerprint writes the topic's
-- length (up to 2^28, far past any topic).
CREATE FUNCTION uvarint(n int) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN n < 128 THEN set_byte('\x00'::bytea, 0, n)
        WHEN n < 16384 THEN set_byte(set_byte('\x0000'::bytea, 0, (n & 127) | 128), 1, n >> 7)
        WHEN n < 2097152 THEN set_byte(set_byte(set_byte('\x000000'::bytea, 0, (n & 127) | 128),
                                       1, ((n >> 7) & 127) | 128), 2, n >> 14)
        ELSE set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea, 0, (n & 127) | 128),
                      1, ((n >> 7) & 127) | 128), 2, ((n >> 14) & 127) | 128), 3, n >> 21)
    END
$$;

-- fingerprint_key is uts.KeyFingerprint: the first 16 bytes of a SHA-256 over the topic's
-- length, the topic and the event id. The backfill below and the tests compute it here.
CREATE FUNCTION fingerprint_key(topic text, event_id text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(substr(sha256(uvarint(octet_length(topic)) || convert_to(topic, 'UTF8')
                                || convert_to(event_id, 'UTF8')), 1, 16), 'hex')::uuid
$$;

-- content_tag is uts.ContentTag of a stored content hash: its first 4 bytes, big-endian.
CREATE FUNCTION content_tag(content_hash bytea) RETURNS int4
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || encode(substr(content_hash, 1, 4), 'hex'))::bit(32)::int4
$$;

-- Every event stored so far has a fingerprint. The unique key (topic, event_id) held them
-- once each; the primary key is built after the rows are in, by one sort, which is much
-- faster than inserting random keys into an index one by one.
INSERT INTO fingerprints (key, content, at)
SELECT fingerprint_key(topic, event_id), content_tag(content_hash),
       floor(extract(epoch FROM processed_at) / 60)::int4
FROM events;
ALTER TABLE fingerprints ADD CONSTRAINT fingerprints_pkey PRIMARY KEY (key);

-- committed_fingerprint is committed_content_hash for fingerprints (see 0001): the stored
-- content tag of a key that INSERT ... ON CONFLICT DO NOTHING skipped because a concurrent
-- transaction committed it after the statement's snapshot was taken.
CREATE FUNCTION committed_fingerprint(p_key uuid) RETURNS int4
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT content FROM fingerprints WHERE key = p_key);
END
$$;
DROP FUNCTION committed_content_hash(text, text);

-- What retention deleted, per topic: how many events, and the greatest cursor among them
-- (uts.Store.ExpiredThrough). Written in the transaction that deletes them. The scan cursor
-- is where the next chunk of expiry reads the topic's feed from (see postgres/expire.go).
CREATE TABLE expiry (
    topic       text   COLLATE "C" PRIMARY KEY,
    expired     bigint NOT NULL,
    through_xid xid8   NOT NULL,
    through_seq bigint NOT NULL,
    scan_xid    xid8   NOT NULL DEFAULT '0',
    scan_seq    bigint NOT NULL DEFAULT 0
);

-- The events are partitioned by processing time, so that expiry drops a whole partition of
-- expired events instead of deleting them row by row. A partitioned table cannot have a
-- unique key that leaves out the partition key: (topic, event_id) is no longer unique here,
-- the fingerprints are; (topic, event_id) stays indexed for StoredHash.
--
-- The existing table becomes the first partition, from MINVALUE to the start of the next
-- UTC day, when it holds events; the store creates the partitions after it (partitions.go).
-- Attaching it checks its rows against that bound with one sequential scan (a CHECK
-- constraint would cost the same scan in this transaction; it saves time only if validated
-- before the migration), and builds the two indexes that were unique on it and are not on
-- the partitioned table (an index attaches to the parent's only if both are unique or
-- neither): one index build per index, over every event, while the migration holds the table.
ALTER TABLE events RENAME TO events_legacy;
ALTER TABLE events_legacy RENAME CONSTRAINT events_pkey TO events_legacy_pkey;
ALTER TABLE events_legacy RENAME CONSTRAINT events_topic_event_id_key TO events_legacy_key;
ALTER INDEX events_topic_feed RENAME TO events_legacy_topic_feed;

CREATE TABLE events (
    seq          bigint      NOT NULL DEFAULT nextval('events_seq_seq'),
    topic        text        COLLATE "C" NOT NULL,
    event_id     text        COLLATE "C" NOT NULL,
    ts           timestamptz NOT NULL,
    ts_nanos     smallint    NOT NULL,
    source       text        NOT NULL,
    payload      text        NOT NULL,
    content_hash bytea       NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (processed_at);
-- The sequence outlives the old table, which may be dropped as a partition: sequence numbers
-- are never handed out twice (uts.Cursor).
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;

-- The feed's order, one topic's feed, and a key's event (StoredHash).
CREATE INDEX events_feed ON events (xid, seq);
CREATE INDEX events_topic_feed ON events (topic, xid, seq);
CREATE INDEX events_key ON events (topic, event_id);

-- A safety net: an event whose partition was not created in time lands here rather than
-- failing its append. Expiry deletes its rows like any others.
CREATE TABLE events_default PARTITION OF events DEFAULT;

DO $$
BEGIN
    IF EXISTS (SELECT FROM events_legacy) THEN
        EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
            date_trunc('day', greatest(now(), (SELECT max(processed_at) FROM events_legacy)), 'UTC')
                + interval '1 day');
        -- Their non-unique twins now serve; the fingerprints decide uniqueness.
        ALTER TABLE events_legacy DROP CONSTRAINT events_legacy_pkey, DROP CONSTRAINT events_legacy_key;
    ELSE
        DROP TABLE events_legacy;
    END IF;
END
$$;
