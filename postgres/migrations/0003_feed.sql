-- The feed's order (see uts.Cursor): each event records the transaction that stored it, and
-- the feed reads in (xid, seq) order, handing out only rows of transactions older than every
-- transaction still in flight. Sequence numbers are drawn before commit, and transactions
-- commit in any order, so seq alone let a reader pass an event that committed behind it.
--
-- Events stored before this migration get xid 0: they sort first, in seq order, and a cursor
-- handed out before it (a bare seq) goes on exactly where it was. Adding a column with a
-- constant default rewrites nothing; the default then changes for new rows only.
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- The feed's order becomes the primary key, in place of seq alone, which nothing reads by
-- any more: an append then maintains as many indexes as before.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (xid, seq);
-- Reading one topic's feed.
DROP INDEX events_topic_seq;
CREATE INDEX events_topic_feed ON events (topic, xid, seq);
