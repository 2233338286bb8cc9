//! Erasing a deleted user: their active sessions revoked, the personal data of every session
//! row, audit entry and kept event of theirs erased, the facts kept, and nobody else touched.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use session_service::session::store::{AuditQuery, Erased, Erasure, Revocation, Store};
use session_service::session::{reasons, Actor, AuditRecord, SessionRecord, SessionStatus};

use crate::fixtures::*;

/// The erasure the service applies for a `user.deleted` of `user` at `at`. It carries an IP to
/// show that the erasure records none.
fn erasure(user: &str, at: DateTime<Utc>) -> Erasure {
    let revocation = Revocation {
        reason: reasons::USER_DELETED.to_owned(),
        actor: Actor::System,
        ip: Some("192.0.2.50".into()),
        at,
        suspicious: false,
        cause: None,
    };
    Erasure { user_id: user.to_owned(), revocation }
}

async fn erase(store: &dyn Store, user: &str, at: DateTime<Utc>) -> Erased {
    store.erase_user(&erasure(user, at)).await.expect("erase")
}

/// Every audit record about `user`, oldest first.
async fn audit_of_user(store: &dyn Store, user: &str) -> Vec<AuditRecord> {
    let query = AuditQuery { session_id: None, user_id: Some(user.to_owned()), limit: 1000, before: None };
    let mut records = store.list_audit(&query).await.expect("list audit");
    records.reverse();
    records
}

/// `s` as an erasure leaves it, in its stored state otherwise.
fn erased(s: &SessionRecord) -> SessionRecord {
    let mut e = s.clone();
    (e.first_ip, e.last_ip, e.user_agent, e.device.name, e.device.fingerprint) = (None, None, None, None, None);
    e.metadata = json!({});
    e
}

async fn stored(store: &dyn Store, s: &SessionRecord) -> SessionRecord {
    store.get_session(s.id).await.unwrap().expect("the row is kept")
}

/// The `data.ip` of each pending event about session `s`, by subject.
async fn event_ips(store: &dyn Store, s: &SessionRecord) -> Vec<(String, Value)> {
    let events = events_of(store, s.id).await;
    events
        .into_iter()
        .filter(|e| e.payload["data"].get("ip").is_some())
        .map(|e| (e.subject, e.payload["data"]["ip"].clone()))
        .collect()
}

pub(crate) async fn erasing_a_user_revokes_the_active_sessions_and_erases_every_row_of_theirs(store: Arc<dyn Store>) {
    let t = base();
    let (mut rotated, active) = (session("u1", t), session("u1", t));
    let (logged_out, mut overdue, deleted) = (session("u1", t), session("u1", t), session("u1", t));
    overdue.expires_at = t + Duration::minutes(5);
    let stranger = session("u2", t);
    for s in [&rotated, &active, &logged_out, &overdue, &deleted, &stranger] {
        create(&*store, s).await;
    }
    rotated = store.rotate_refresh(&rotation(&rotated, t + Duration::minutes(1))).await.unwrap().expect("rotated");
    let logged_out = revoke(&*store, logged_out.id, reasons::LOGOUT, t + Duration::minutes(2)).await.remove(0);
    store.delete_session(deleted.id, &revocation(reasons::DELETED, t + Duration::minutes(3))).await.unwrap();
    let at = t + Duration::hours(1);

    let done = erase(&*store, "u1", at).await;

    assert_eq!(sorted_ids(&done.revoked), sorted_ids(&[rotated.clone(), active.clone()]));
    for s in [&rotated, &active] {
        let expected = SessionRecord {
            status: SessionStatus::Revoked,
            revoked_at: Some(at),
            revoke_reason: Some(reasons::USER_DELETED.into()),
            ..erased(s)
        };
        let returned = done.revoked.iter().find(|r| r.id == s.id).expect("revoked");
        assert_eq!(returned, &expected, "returned as revoked and erased");
        assert_eq!(stored(&*store, s).await, expected);
    }
    // Sessions already over are erased but keep their state: the facts stay.
    assert_eq!(stored(&*store, &logged_out).await, erased(&logged_out));
    assert_eq!(stored(&*store, &overdue).await, erased(&overdue));
    let mut erased_rows = done.sessions.clone();
    erased_rows.sort();
    assert_eq!(erased_rows, sorted_ids(&[rotated.clone(), active.clone(), logged_out.clone(), overdue.clone()]));

    // The audit trail keeps every entry, deleted session's included, without an IP.
    let audit = audit_of_user(&*store, "u1").await;
    assert!(audit.iter().all(|r| r.ip.is_none()), "{audit:#?}");
    assert!(audit.iter().any(|r| r.session_id == Some(deleted.id) && r.action == "delete"));
    let erase_records: Vec<_> = audit.iter().filter(|r| r.action == "erase").collect();
    assert_eq!(erase_records.len(), 1);
    let e = erase_records[0];
    assert_eq!((e.outcome.as_str(), &e.actor, e.at, e.session_id), ("ok", &Actor::System, at, None));
    assert_eq!((e.user_id.as_deref(), e.reason.as_deref()), (Some("u1"), Some(reasons::USER_DELETED)));
    for s in [&rotated, &active] {
        let revoke = audit.iter().find(|r| r.session_id == Some(s.id) && r.action == "revoke").expect("audited");
        assert_eq!(
            (revoke.reason.as_deref(), &revoke.actor, revoke.at),
            (Some(reasons::USER_DELETED), &Actor::System, at)
        );
    }
    // Five creations, the rotation, the logout, and the deletion's revocation and record.
    assert_eq!(done.audit_entries, 9, "{done:?}");

    // One `session.revoked` per revoked session; no event of the user's keeps an IP.
    for s in [&rotated, &active] {
        let revoked: Vec<_> =
            events_of(&*store, s.id).await.into_iter().filter(|e| e.subject == "session.revoked").collect();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].payload["data"]["reason"], reasons::USER_DELETED);
    }
    assert_eq!(subjects_of(&*store, logged_out.id).await, ["session.created", "session.revoked"]);
    let ips = event_ips(&*store, &rotated).await;
    assert_eq!(ips, [("session.created".into(), Value::Null), ("session.refreshed".into(), Value::Null)]);
    for s in [&active, &logged_out, &overdue, &deleted] {
        assert_eq!(event_ips(&*store, s).await, [("session.created".into(), Value::Null)]);
    }
    assert_eq!(done.events, 6, "five creations and a refresh carried an IP");

    // Another user is untouched.
    assert_eq!(stored(&*store, &stranger).await, stranger);
    assert_eq!(event_ips(&*store, &stranger).await, [("session.created".into(), json!("203.0.113.7"))]);
    assert!(audit_of_user(&*store, "u2").await.iter().all(|r| r.ip.as_deref() == Some("203.0.113.7")));
}

pub(crate) async fn erasing_a_user_twice_changes_nothing_the_second_time(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let first = erase(&*store, "u1", t + Duration::minutes(1)).await;
    assert_eq!(ids(&first.revoked), [s.id]);
    let (row, audit, events) =
        (stored(&*store, &s).await, audit_of_user(&*store, "u1").await, events_of(&*store, s.id).await);

    let second = erase(&*store, "u1", t + Duration::minutes(2)).await;

    assert!(second.is_empty(), "{second:?}");
    assert_eq!(second, Erased::default());
    assert_eq!(stored(&*store, &s).await, row);
    assert_eq!(audit_of_user(&*store, "u1").await, audit, "no second erase record");
    assert_eq!(events_of(&*store, s.id).await, events, "no second session.revoked");
}

pub(crate) async fn erasing_a_user_without_sessions_writes_nothing_and_a_bare_session_is_still_revoked(
    store: Arc<dyn Store>,
) {
    let t = base();
    let nobody = erase(&*store, "never-seen", t).await;
    assert!(nobody.is_empty(), "{nobody:?}");
    assert!(audit_of_user(&*store, "never-seen").await.is_empty());

    // A session holding no personal data has nothing to erase, but it still ends.
    let bare = erased(&session("u3", t));
    create(&*store, &bare).await;
    let done = erase(&*store, "u3", t + Duration::minutes(1)).await;
    assert_eq!(ids(&done.revoked), [bare.id]);
    assert!(done.sessions.is_empty(), "nothing was left to erase: {done:?}");
    assert_eq!(stored(&*store, &bare).await.status, SessionStatus::Revoked);
    assert_eq!(subjects_of(&*store, bare.id).await, ["session.created", "session.revoked"]);
    let actions: Vec<_> = audit_of_user(&*store, "u3").await.into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["create", "revoke", "erase"]);
}
