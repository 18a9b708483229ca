-- The broker deliveries already committed (see uts.Event.Delivery): a consumer that lost its
-- connection while a batch committed delivers it again, and an event whose delivery is here
-- was stored and counted by the transaction that put it here. The key includes the event's,
-- so that two brokers that happen to number an entry alike cannot make one event pass for
-- another's redelivery. Rows are pruned after uts.DeliveryRetention.
CREATE TABLE deliveries (
    delivery    text        COLLATE "C" NOT NULL,
    topic       text        COLLATE "C" NOT NULL,
    event_id    text        COLLATE "C" NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery, topic, event_id)
);

-- Pruning the oldest.
CREATE INDEX deliveries_recorded_at ON deliveries (recorded_at);
