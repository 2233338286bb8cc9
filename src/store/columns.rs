//! Column lists shared by both backends' SQL (the schemas use the same names), as macros so they
//! can be spliced into `concat!` and the statements stay `&'static str`.

/// Every column of `sessions`, in the order inserts bind them.
macro_rules! session_columns {
    () => {
        "id, user_id, status, device_id, platform, device_name, device_model, app_version, \
         fingerprint, first_ip, last_ip, user_agent, metadata, created_at, last_used_at, \
         expires_at, absolute_expires_at, revoked_at, revoke_reason, last_seen_at, \
         refresh_generation, refresh_hash, prev_refresh_hash, rotated_at"
    };
}

/// Every column of `audit_log`, in the order inserts bind them.
macro_rules! audit_columns {
    () => {
        "id, at, session_id, user_id, actor_kind, actor_id, action, outcome, reason, ip, attempts"
    };
}

/// Every column of `outbox` that an event carries, in the order inserts bind them.
macro_rules! outbox_columns {
    () => {
        "id, subject, payload, created_at"
    };
}
