//! Records and helpers the store stories share: fully populated sessions at explicit times, the
//! audit records and rotations the service would build, and readers for a session's trail.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use session_service::clock::truncate;
use session_service::session::store::{
    AuditQuery, Creation, ListQuery, Revocation, RevokeTarget, Rotation, StatusFilter, Store,
};
use session_service::session::{Actor, AuditRecord, Device, OutboxEvent, SessionRecord, SessionStatus};
use uuid::Uuid;

/// A fixed "now" for one test; every other time is an offset from it.
pub(crate) fn base() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// 32 random bytes, standing in for a refresh-token hash.
pub(crate) fn hash() -> Vec<u8> {
    [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat()
}

/// An active session of `user` created (and last used) at `at`, with every optional field set.
pub(crate) fn session(user: &str, at: DateTime<Utc>) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4(),
        user_id: user.to_owned(),
        status: SessionStatus::Active,
        device: Device {
            id: format!("device-{}", Uuid::new_v4().simple()),
            platform: "ios".into(),
            name: Some("Ana's phone".into()),
            model: Some("iPhone15,2".into()),
            app_version: Some("3.2.1".into()),
            fingerprint: Some("fp-1234".into()),
        },
        first_ip: Some("203.0.113.7".into()),
        last_ip: Some("203.0.113.7".into()),
        user_agent: Some("GameClient/3.2.1".into()),
        metadata: json!({ "login": "password", "flags": [1, 2.5, null], "nested": { "a": true } }),
        created_at: at,
        last_used_at: at,
        expires_at: at + Duration::days(30),
        absolute_expires_at: at + Duration::days(180),
        revoked_at: None,
        revoke_reason: None,
        last_seen_at: None,
        refresh_generation: 0,
        refresh_hash: hash(),
        prev_refresh_hash: None,
        rotated_at: None,
    }
}

/// The audit record the service writes with a creation.
pub(crate) fn created_audit(s: &SessionRecord) -> AuditRecord {
    AuditRecord::new(s.created_at, Actor::Service("auth".into()), "create", "ok")
        .session(s.id, &s.user_id)
        .ip(s.first_ip.as_deref())
}

/// Creates `s` with a cap that never evicts.
pub(crate) async fn create(store: &dyn Store, s: &SessionRecord) {
    let evicted = store.create_session(&Creation::new(s, 1000, created_audit(s))).await.expect("create");
    assert!(evicted.is_empty());
}

/// The rotation the service would apply to `s` (at its current generation) at `at`.
pub(crate) fn rotation(s: &SessionRecord, at: DateTime<Utc>) -> Rotation {
    let audit = AuditRecord::new(at, Actor::User(s.user_id.clone()), "refresh", "rotate")
        .session(s.id, &s.user_id)
        .ip(Some("198.51.100.9"));
    Rotation {
        session_id: s.id,
        expected_generation: s.refresh_generation,
        new_hash: hash(),
        prev_hash: s.refresh_hash.clone(),
        at,
        expires_at: at + Duration::days(30),
        ip: Some("198.51.100.9".into()),
        user_agent: Some("GameClient/3.3.0".into()),
        audit,
        event: OutboxEvent::refreshed(s, at, s.refresh_generation + 1),
    }
}

/// A revocation by the user, at `at`.
pub(crate) fn revocation(reason: &str, at: DateTime<Utc>) -> Revocation {
    Revocation {
        reason: reason.to_owned(),
        actor: Actor::User("someone".into()),
        ip: Some("192.0.2.1".into()),
        at,
        suspicious: false,
        cause: None,
    }
}

/// The audit records of session `id`, oldest first.
pub(crate) async fn audit_of(store: &dyn Store, id: Uuid) -> Vec<AuditRecord> {
    let query = AuditQuery { session_id: Some(id), user_id: None, limit: 1000, before: None };
    let mut records = store.list_audit(&query).await.expect("list audit");
    records.reverse();
    records
}

/// `action/outcome` of each audit record of session `id`, oldest first.
pub(crate) async fn actions_of(store: &dyn Store, id: Uuid) -> Vec<String> {
    audit_of(store, id).await.iter().map(|a| format!("{}/{}", a.action, a.outcome)).collect()
}

/// The pending outbox events about session `id`, in creation order.
pub(crate) async fn events_of(store: &dyn Store, id: Uuid) -> Vec<OutboxEvent> {
    let events = store.pending_events(10_000).await.expect("pending events");
    events.into_iter().filter(|e| e.payload["subject"] == json!(id)).collect()
}

/// Subjects of the pending outbox events about session `id`, in creation order.
pub(crate) async fn subjects_of(store: &dyn Store, id: Uuid) -> Vec<String> {
    events_of(store, id).await.into_iter().map(|e| e.subject).collect()
}

/// Ids in the order given.
pub(crate) fn ids(sessions: &[SessionRecord]) -> Vec<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

/// Ids sorted, for comparing sets of sessions whose order is not part of the contract.
pub(crate) fn sorted_ids(sessions: &[SessionRecord]) -> Vec<Uuid> {
    let mut ids = ids(sessions);
    ids.sort();
    ids
}

/// Revokes one session by the user at `at`; returns what the store revoked.
pub(crate) async fn revoke(store: &dyn Store, id: Uuid, reason: &str, at: DateTime<Utc>) -> Vec<SessionRecord> {
    let target = RevokeTarget::Session(id);
    store.revoke_sessions(&target, &revocation(reason, at)).await.expect("revoke")
}

/// The stored status of session `id`, `None` if there is no such row.
pub(crate) async fn status_of(store: &dyn Store, id: Uuid) -> Option<SessionStatus> {
    store.get_session(id).await.expect("get").map(|s| s.status)
}

/// A first page (of up to 100) of a user's sessions with `filter` at `now`.
pub(crate) async fn list(
    store: &dyn Store,
    user: &str,
    filter: StatusFilter,
    now: DateTime<Utc>,
) -> Vec<SessionRecord> {
    let query = ListQuery { filter, now, limit: 100, after: None };
    store.list_user_sessions(user, &query).await.expect("list")
}
