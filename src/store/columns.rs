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

/// The SET list that erases a session row's personal data (a deleted user's): IPs, user agent,
/// device name and fingerprint, metadata. What stays is the fact of the session: ids, user,
/// device id, platform, model, app version, status and times. Places, once sessions hold them,
/// are erased here too.
macro_rules! erase_session_data {
    () => {
        "first_ip = NULL, last_ip = NULL, user_agent = NULL, device_name = NULL, fingerprint = NULL, \
         metadata = '{}'"
    };
}

/// True for a session row still holding some of what [`erase_session_data`] erases, so that an
/// erasure touches (and reports) only rows it changes.
macro_rules! holds_session_data {
    () => {
        "(first_ip IS NOT NULL OR last_ip IS NOT NULL OR user_agent IS NOT NULL OR device_name IS NOT NULL \
         OR fingerprint IS NOT NULL OR metadata <> '{}')"
    };
}
