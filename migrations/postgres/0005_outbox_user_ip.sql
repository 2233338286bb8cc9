-- The outbox events that carry a user's IP (`session.created`, `session.refreshed`), by user: a
-- deleted user's erasure finds the kept ones without reading the whole outbox. Partial, so the
-- events without an IP (and those already erased) are not indexed.
CREATE INDEX outbox_user_ip ON outbox ((payload->'data'->>'user_id'))
    WHERE (payload->'data'->>'ip') IS NOT NULL;
