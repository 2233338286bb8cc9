//! Editing sessions: metadata updates, extensions and deletion.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use session_service::session::store::{SessionUpdate, Store};
use session_service::session::{reasons, Actor, AuditRecord, SessionRecord, SessionStatus};
use uuid::Uuid;

use crate::fixtures::*;

fn audit(s: &SessionRecord, action: &str, at: DateTime<Utc>) -> AuditRecord {
    AuditRecord::new(at, Actor::Service("auth".into()), action, "ok").session(s.id, &s.user_id)
}

async fn extend(
    store: &dyn Store,
    s: &SessionRecord,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Option<SessionRecord> {
    let audit = audit(s, "extend", at);
    store.extend_session(s.id, expires_at, at, &audit).await.expect("extend")
}

pub(crate) async fn update_changes_only_the_given_fields_and_records_it(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;

    let rename = SessionUpdate { device_name: Some("Tablet".into()), metadata: None };
    let renamed = store.update_session(s.id, &rename, &audit(&s, "update", t)).await.unwrap();
    let renamed = renamed.expect("exists");
    assert_eq!((renamed.device.name.as_deref(), &renamed.metadata), (Some("Tablet"), &s.metadata));

    let retag = SessionUpdate { device_name: None, metadata: Some(json!({ "tier": "gold" })) };
    let retagged = store.update_session(s.id, &retag, &audit(&s, "update", t)).await.unwrap();
    let retagged = retagged.expect("exists");
    let mut expected = s.clone();
    expected.device.name = Some("Tablet".into());
    expected.metadata = json!({ "tier": "gold" });
    assert_eq!(retagged, expected);
    assert_eq!(store.get_session(s.id).await.unwrap(), Some(expected));

    let missing = store.update_session(Uuid::new_v4(), &rename, &audit(&s, "update", t)).await;
    assert_eq!(missing.unwrap(), None);
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "update/ok", "update/ok"]);
    let subjects = subjects_of(&*store, s.id).await;
    assert_eq!(subjects, ["session.created", "session.updated", "session.updated"]);
}

pub(crate) async fn extend_moves_the_expiry_of_an_active_session(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let at = t + Duration::days(1);

    let extended = extend(&*store, &s, at + Duration::days(60), at).await.expect("active");
    assert_eq!((extended.expires_at, extended.last_used_at), (at + Duration::days(60), at));
    assert_eq!(extended.absolute_expires_at, s.absolute_expires_at);
    assert_eq!(store.get_session(s.id).await.unwrap(), Some(extended));
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "extend/ok"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.extended"]);
}

pub(crate) async fn extend_refuses_missing_revoked_and_expired_sessions(store: Arc<dyn Store>) {
    let t = base();
    let (revoked, overdue) = (session("u1", t), session("u1", t));
    create(&*store, &revoked).await;
    create(&*store, &overdue).await;
    revoke(&*store, revoked.id, reasons::LOGOUT, t).await;
    let at = t + Duration::minutes(1);
    let later = at + Duration::days(90);

    assert_eq!(extend(&*store, &revoked, later, at).await, None);
    // At its expiry the session is expired in effect, even before the sweep marks it.
    assert_eq!(extend(&*store, &overdue, later, overdue.expires_at).await, None);
    assert_eq!(extend(&*store, &session("u1", t), later, at).await, None);

    assert_eq!(store.get_session(overdue.id).await.unwrap(), Some(overdue.clone()));
    assert_eq!(actions_of(&*store, overdue.id).await, ["create/ok"]);
    assert_eq!(subjects_of(&*store, revoked.id).await, ["session.created", "session.revoked"]);
}

pub(crate) async fn delete_revokes_an_active_session_removes_the_row_and_keeps_its_audit(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let at = t + Duration::seconds(5);

    let deleted = store.delete_session(s.id, &revocation(reasons::DELETED, at)).await.unwrap();
    let deleted = deleted.expect("existed");
    assert_eq!(deleted.status, SessionStatus::Revoked);
    assert_eq!((deleted.revoked_at, deleted.revoke_reason.as_deref()), (Some(at), Some(reasons::DELETED)));
    assert_eq!(store.get_session(s.id).await.unwrap(), None);
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "revoke/ok", "delete/ok"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.revoked"]);
    let again = store.delete_session(s.id, &revocation(reasons::DELETED, at)).await;
    assert_eq!(again.unwrap(), None);
}

pub(crate) async fn delete_of_an_inactive_session_revokes_nothing_more(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    revoke(&*store, s.id, reasons::LOGOUT, t).await;

    let deleted = store.delete_session(s.id, &revocation(reasons::DELETED, t)).await.unwrap();
    assert_eq!(deleted.expect("existed").revoke_reason.as_deref(), Some(reasons::LOGOUT));
    assert_eq!(status_of(&*store, s.id).await, None);
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "revoke/ok", "delete/ok"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.revoked"]);
}
