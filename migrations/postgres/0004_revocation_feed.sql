-- The revocation feed (`GET /revocations`) reads the `session.revoked` rows of the outbox in the
-- order of the transactions that wrote them: `feed_xid` is the writing transaction's id. A reader
-- only returns rows below its snapshot's xmin (every transaction below it has committed or
-- aborted), so a cursor never passes a revocation still being committed.
ALTER TABLE outbox ADD COLUMN feed_xid xid8;
-- Rows written before this migration: all committed, numbered by this transaction.
UPDATE outbox SET feed_xid = pg_current_xact_id() WHERE subject = 'session.revoked';
ALTER TABLE outbox ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id();

-- The feed in cursor order, and the window of a first read (revocations still mattering).
CREATE INDEX outbox_revocations ON outbox (feed_xid, id) WHERE subject = 'session.revoked';
CREATE INDEX outbox_revocations_time ON outbox (created_at) WHERE subject = 'session.revoked';
