-- The outbox's retention deletes rows by age, oldest first, in bounded batches: delivered rows
-- past `events.sent_retention_secs`, or (without a broker) any row past
-- `events.unsent_retention_secs`. `outbox_pending` only covers undelivered rows.
CREATE INDEX outbox_created ON outbox (created_at);
