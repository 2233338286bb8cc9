//! The per-user cap on active sessions: creating beyond it revokes the least recently used.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use session_service::session::store::{Creation, StatusFilter, Store};
use session_service::session::{reasons, Actor, SessionRecord, SessionStatus};

use crate::fixtures::*;

/// Three active sessions of `u1` (plus one that expires at `t + 5 min`), created in one order and
/// used in another, so eviction must follow use, not age. Returns them, least recently used
/// (`second`) first: `[second, third, first]`.
async fn three_sessions_used_out_of_order(store: &dyn Store, t: DateTime<Utc>) -> [SessionRecord; 3] {
    // Counts against the cap while it lives, then neither counts nor is evicted.
    let mut overdue = session("u1", t - Duration::minutes(1));
    overdue.expires_at = t + Duration::minutes(5);
    let mut first = session("u1", t);
    first.last_used_at = t + Duration::minutes(30);
    let mut second = session("u1", t + Duration::minutes(1));
    second.last_used_at = t + Duration::minutes(10);
    let third = session("u1", t + Duration::minutes(20));
    for s in [&overdue, &first, &second, &third, &session("u2", t)] {
        assert!(store.create_session(&Creation::new(s, 3, created_audit(s))).await.unwrap().is_empty());
    }
    [second, third, first]
}

pub(crate) async fn creating_beyond_the_cap_revokes_the_least_recently_used(store: Arc<dyn Store>) {
    let t = base();
    let [lru, third, first] = three_sessions_used_out_of_order(&*store, t).await;
    let fourth = session("u1", t + Duration::hours(1));

    let evicted = store.create_session(&Creation::new(&fourth, 3, created_audit(&fourth))).await.unwrap();
    assert_eq!(ids(&evicted), [lru.id]);
    let victim = &evicted[0];
    assert_eq!(victim.status, SessionStatus::Revoked);
    assert_eq!(victim.revoked_at, Some(fourth.created_at));
    assert_eq!(victim.revoke_reason.as_deref(), Some(reasons::SESSION_LIMIT));
    assert_eq!(store.get_session(lru.id).await.unwrap().as_ref(), Some(victim));

    let active = list(&*store, "u1", StatusFilter::Active, fourth.created_at).await;
    assert_eq!(sorted_ids(&active), sorted_ids(&[first, third, fourth.clone()]));
    assert_eq!(list(&*store, "u2", StatusFilter::Active, fourth.created_at).await.len(), 1);
}

pub(crate) async fn an_eviction_is_audited_and_announced_as_the_session_limit(store: Arc<dyn Store>) {
    let t = base();
    let [lru, ..] = three_sessions_used_out_of_order(&*store, t).await;
    let fourth = session("u1", t + Duration::hours(1));
    store.create_session(&Creation::new(&fourth, 3, created_audit(&fourth))).await.unwrap();

    let audit = audit_of(&*store, lru.id).await;
    assert_eq!(audit.len(), 2);
    let revoke = &audit[1];
    assert_eq!((revoke.action.as_str(), revoke.outcome.as_str()), ("revoke", "ok"));
    assert_eq!((&revoke.actor, revoke.reason.as_deref()), (&Actor::System, Some(reasons::SESSION_LIMIT)));
    assert_eq!((revoke.at, revoke.user_id.as_deref()), (fourth.created_at, Some("u1")));
    let events = events_of(&*store, lru.id).await;
    let subjects: Vec<_> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["session.created", "session.revoked"]);
    assert_eq!(events[1].payload["data"]["reason"], reasons::SESSION_LIMIT);
    assert_eq!(subjects_of(&*store, fourth.id).await, ["session.created"]);
}

pub(crate) async fn a_lower_cap_evicts_every_session_beyond_it_in_one_creation(store: Arc<dyn Store>) {
    let t = base();
    let older: Vec<_> = (0..4).map(|i| session("u1", t + Duration::seconds(i))).collect();
    for s in &older {
        create(&*store, s).await;
    }
    let newest = session("u1", t + Duration::minutes(1));
    let evicted = store.create_session(&Creation::new(&newest, 2, created_audit(&newest))).await.unwrap();
    // The most recently used of the others keeps the second place.
    assert_eq!(sorted_ids(&evicted), sorted_ids(&older[..3]));
    for s in &evicted {
        assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "revoke/ok"]);
        assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.revoked"]);
    }
    assert_eq!(status_of(&*store, older[3].id).await, Some(SessionStatus::Active));
}

pub(crate) async fn concurrent_creations_for_one_user_leave_exactly_cap_active(store: Arc<dyn Store>) {
    let t = base();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let s = session("u1", t + Duration::milliseconds(i));
            tokio::spawn(async move { store.create_session(&Creation::new(&s, 3, created_audit(&s))).await })
        })
        .collect();
    let mut evicted = 0;
    for task in tasks {
        evicted += task.await.unwrap().unwrap().len();
    }
    assert_eq!(evicted, 7);
    let now = t + Duration::seconds(1);
    assert_eq!(list(&*store, "u1", StatusFilter::Active, now).await.len(), 3);
    let all = list(&*store, "u1", StatusFilter::All, now).await;
    let limited = all.iter().filter(|s| s.revoke_reason.as_deref() == Some(reasons::SESSION_LIMIT));
    assert_eq!(limited.count(), 7);
}
