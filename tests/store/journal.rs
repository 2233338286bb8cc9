//! The audit log and the outbox read back: filters, ordering, cursors, delivery marks, counts.

use std::sync::Arc;

use chrono::Duration;
use session_service::session::store::{AuditQuery, Store};
use session_service::session::{reasons, Actor, AuditRecord, SessionStatus};

use crate::fixtures::*;

pub(crate) async fn appended_audit_records_read_back_exactly(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    let full = AuditRecord::new(t, Actor::Service("auth".into()), "validate", "rejected")
        .session(s.id, "u1")
        .reason("expired")
        .ip(Some("2001:db8::1"));
    let bare = AuditRecord::new(t + Duration::microseconds(1), Actor::System, "refresh", "forged");
    store.append_audit(&full).await.unwrap();
    store.append_audit(&bare).await.unwrap();

    assert_eq!(audit_of(&*store, s.id).await, std::slice::from_ref(&full));
    let everything = AuditQuery { session_id: None, user_id: None, limit: 10, before: None };
    assert_eq!(store.list_audit(&everything).await.unwrap(), [bare, full]);
}

pub(crate) async fn audit_lists_a_sessions_records_newest_first_even_after_deletion(store: Arc<dyn Store>) {
    let t = base();
    let (a, b) = (session("u1", t), session("u1", t));
    create(&*store, &a).await;
    create(&*store, &b).await;
    revoke(&*store, a.id, reasons::LOGOUT, t).await;
    store.delete_session(a.id, &revocation(reasons::DELETED, t)).await.unwrap();

    let query = AuditQuery { session_id: Some(a.id), user_id: None, limit: 10, before: None };
    let records = store.list_audit(&query).await.unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["delete", "revoke", "create"]);
    assert!(records.windows(2).all(|w| w[0].id > w[1].id));
    assert!(records.iter().all(|r| r.session_id == Some(a.id)));
}

pub(crate) async fn audit_lists_a_users_records_in_pages_with_a_before_cursor(store: Arc<dyn Store>) {
    let t = base();
    let (a, b) = (session("u1", t), session("u1", t));
    for s in [&a, &b, &session("u2", t)] {
        create(&*store, s).await;
    }
    revoke(&*store, a.id, reasons::LOGOUT, t).await;
    revoke(&*store, b.id, reasons::LOGOUT, t).await;

    let by_user = AuditQuery { session_id: None, user_id: Some("u1".into()), limit: 10, before: None };
    let all = store.list_audit(&by_user).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|r| r.user_id.as_deref() == Some("u1")));
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));

    let first = store.list_audit(&AuditQuery { limit: 3, ..by_user.clone() }).await.unwrap();
    let rest = AuditQuery { before: first.last().map(|r| r.id), ..by_user.clone() };
    assert_eq!([first, store.list_audit(&rest).await.unwrap()].concat(), all);
    let both = AuditQuery { session_id: Some(b.id), ..by_user };
    assert_eq!(store.list_audit(&both).await.unwrap().len(), 2);
}

pub(crate) async fn pending_events_come_in_creation_order_until_marked_sent(store: Arc<dyn Store>) {
    let t = base();
    let seconds = Duration::seconds;
    // Created first, but with the later timestamp.
    let (a, b) = (session("u1", t + seconds(2)), session("u1", t));
    create(&*store, &a).await;
    create(&*store, &b).await;
    revoke(&*store, a.id, reasons::LOGOUT, t + seconds(3)).await;

    let pending = store.pending_events(10).await.unwrap();
    let order: Vec<_> = pending.iter().map(|e| (e.subject.as_str(), e.created_at)).collect();
    let created = "session.created";
    assert_eq!(order, [(created, t), (created, t + seconds(2)), ("session.revoked", t + seconds(3))]);
    assert_eq!(pending[1].payload["data"]["session_id"], serde_json::json!(a.id));
    assert_eq!(store.pending_events(2).await.unwrap(), pending[..2]);

    let (first, second, third) = (pending[0].id, pending[1].id, pending[2].id);
    store.mark_events_sent(&[first, third], t + seconds(4)).await.unwrap();
    assert_eq!(store.pending_events(10).await.unwrap(), pending[1..2]);
    store.mark_events_sent(&[second], t + seconds(5)).await.unwrap();
    store.mark_events_sent(&[], t + seconds(6)).await.unwrap();
    assert!(store.pending_events(10).await.unwrap().is_empty());
}

pub(crate) async fn count_by_status_counts_each_stored_status(store: Arc<dyn Store>) {
    assert!(store.count_by_status().await.unwrap().is_empty());
    let t = base();
    let sessions: Vec<_> = (0..6).map(|_| session("u1", t)).collect();
    for s in &sessions {
        create(&*store, s).await;
    }
    for s in &sessions[..2] {
        revoke(&*store, s.id, reasons::LOGOUT, t).await;
    }
    store.expire_sessions(sessions[0].expires_at, 1).await.unwrap();

    let mut counts = store.count_by_status().await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(counts, [(SessionStatus::Active, 3), (SessionStatus::Expired, 1), (SessionStatus::Revoked, 2)]);
    store.ping().await.unwrap();
}
