-- Durable subscriptions (uts.Subscriptions): a name, the topics it reads (sorted; empty for
-- every topic) and its committed cursor in feed order, (cursor_xid, cursor_seq) as the
-- events' (xid, seq). Names and topics compare byte by byte, as the events' do; the topics'
-- collation is the events' too, so that topic = ANY(topics) needs no COLLATE.
CREATE TABLE subscriptions (
    name       text        COLLATE "C" PRIMARY KEY,
    topics     text[]      COLLATE "C" NOT NULL,
    start      text        NOT NULL,
    cursor_xid xid8        NOT NULL,
    cursor_seq bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
