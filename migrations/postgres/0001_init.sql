-- Sessions, the audit trail and the event outbox (Postgres).
-- Timestamps are TIMESTAMPTZ (microsecond precision, the precision the service keeps).

CREATE TABLE sessions (
    id                  UUID        PRIMARY KEY,
    user_id             TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('active', 'revoked', 'expired')),
    device_id           TEXT        NOT NULL,
    platform            TEXT        NOT NULL,
    device_name         TEXT,
    device_model        TEXT,
    app_version         TEXT,
    fingerprint         TEXT,
    first_ip            TEXT,
    last_ip             TEXT,
    user_agent          TEXT,
    metadata            JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at          TIMESTAMPTZ NOT NULL,
    last_used_at        TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ,
    revoke_reason       TEXT,
    last_seen_at        TIMESTAMPTZ,
    refresh_generation  BIGINT      NOT NULL,
    refresh_hash        BYTEA       NOT NULL,
    prev_refresh_hash   BYTEA,
    rotated_at          TIMESTAMPTZ
);

-- A user's sessions, newest first, with the id as tie-breaker (keyset pagination).
CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC, id DESC);
-- Cap eviction: a user's active sessions by last use.
CREATE INDEX sessions_user_active_lru ON sessions (user_id, last_used_at) WHERE status = 'active';
-- The expiry sweep: active rows by expiry. Partial, like the one above: it holds only the rows
-- the sweep can select, and a per-user query is never tempted to scan all active sessions by it.
CREATE INDEX sessions_sweep ON sessions (expires_at) WHERE status = 'active';

-- Append-only. No foreign key to sessions: the trail outlives a deleted session.
CREATE TABLE audit_log (
    id         UUID        PRIMARY KEY, -- UUIDv7: ordering by id is ordering by time
    at         TIMESTAMPTZ NOT NULL,
    session_id UUID,
    user_id    TEXT,
    actor_kind TEXT        NOT NULL,
    actor_id   TEXT,
    action     TEXT        NOT NULL,
    outcome    TEXT        NOT NULL,
    reason     TEXT,
    ip         TEXT
);

CREATE INDEX audit_log_session ON audit_log (session_id, id);
CREATE INDEX audit_log_user ON audit_log (user_id, id);

-- Transactional outbox: rows are written with the change they describe, relayed, then marked sent.
CREATE TABLE outbox (
    id         UUID        PRIMARY KEY,
    subject    TEXT        NOT NULL,
    payload    JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ
);

-- Only undelivered rows, in creation order: stays small however long the outbox history grows.
CREATE INDEX outbox_pending ON outbox (created_at, id) WHERE sent_at IS NULL;
