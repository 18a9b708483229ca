-- feed_horizon is the transaction id below which the feed may hand out events (see
-- uts.Cursor and postgres/query.go): the oldest transaction in flight that could still store
-- an event in this database, or, with none, the first transaction not yet begun.
--
-- pg_snapshot_xmin alone counts the transactions of every database of the server, so a long
-- transaction of another application, in another database, held the feed back. A
-- transaction of another database can never write this table: those are left out. Which
-- database a transaction runs in is read from pg_stat_activity after the snapshot was
-- taken; a transaction not found there (it ended meanwhile, it is prepared, or its session
-- is not visible to this role) is counted, as before. So the horizon is never later than
-- the true one: the feed may still be late, never wrong.
--
-- STABLE, so that it reads the snapshot of the statement that calls it.
CREATE FUNCTION feed_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
    FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE NOT EXISTS (
        SELECT FROM pg_stat_activity a
        -- backend_xid is the 32-bit xid: the low half of the xid8
        WHERE a.backend_xid::text::bigint = x::text::bigint % 4294967296
          AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
$$;
