-- The revocation feed (`GET /revocations`) reads the `session.revoked` rows of the outbox in
-- commit order: `feed_seq` is taken from a counter inside the writing transaction, and SQLite
-- runs one write transaction at a time, so sequence order is commit order. A counter of its own
-- rather than the rowid: a pruned-empty outbox would hand out rowids again from 1.
ALTER TABLE outbox ADD COLUMN feed_seq INTEGER;

CREATE TABLE revocation_feed_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);

-- Rows written before this migration keep their insertion order.
UPDATE outbox SET feed_seq = rowid WHERE subject = 'session.revoked';
INSERT INTO revocation_feed_seq (id, last) SELECT 1, coalesce(max(feed_seq), 0) FROM outbox;

CREATE TRIGGER outbox_revocation_seq AFTER INSERT ON outbox WHEN NEW.subject = 'session.revoked'
BEGIN
    UPDATE revocation_feed_seq SET last = last + 1 WHERE id = 1;
    UPDATE outbox SET feed_seq = (SELECT last FROM revocation_feed_seq WHERE id = 1) WHERE rowid = NEW.rowid;
END;

-- The feed in cursor order, and the window of a first read (revocations still mattering).
CREATE INDEX outbox_revocations ON outbox (feed_seq) WHERE feed_seq IS NOT NULL;
CREATE INDEX outbox_revocations_time ON outbox (created_at) WHERE feed_seq IS NOT NULL;
