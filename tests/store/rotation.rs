//! The refresh rotation: a compare-and-swap on the session's generation.

use std::sync::Arc;

use chrono::Duration;
use session_service::session::reasons;
use session_service::session::store::{RevokeTarget, Store};

use crate::fixtures::*;

pub(crate) async fn rotation_advances_the_generation_and_keeps_the_previous_hash(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let r = rotation(&s, t + Duration::minutes(5));

    let rotated = store.rotate_refresh(&r).await.unwrap().expect("the CAS holds");
    assert_eq!(rotated.refresh_generation, 1);
    assert_eq!(rotated.refresh_hash, r.new_hash);
    assert_eq!(rotated.prev_refresh_hash, Some(s.refresh_hash.clone()));
    assert_eq!((rotated.rotated_at, rotated.last_used_at, rotated.expires_at), (Some(r.at), r.at, r.expires_at));
    assert_eq!(
        (rotated.last_ip.as_deref(), rotated.user_agent.as_deref()),
        (Some("198.51.100.9"), Some("GameClient/3.3.0"))
    );
    // Untouched by rotation.
    assert_eq!(
        (rotated.first_ip.as_deref(), rotated.absolute_expires_at),
        (s.first_ip.as_deref(), s.absolute_expires_at)
    );
    assert_eq!(store.get_session(s.id).await.unwrap(), Some(rotated.clone()));

    assert_eq!(audit_of(&*store, s.id).await[1], r.audit);
    assert_eq!(events_of(&*store, s.id).await[1], r.event);

    // The next rotation starts from the new generation.
    let next = rotation(&rotated, t + Duration::minutes(10));
    assert_eq!(store.rotate_refresh(&next).await.unwrap().expect("CAS").refresh_generation, 2);
}

pub(crate) async fn rotation_keeps_the_last_ip_and_user_agent_when_none_are_given(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let mut r = rotation(&s, t + Duration::minutes(1));
    (r.ip, r.user_agent) = (None, None);
    let rotated = store.rotate_refresh(&r).await.unwrap().expect("CAS");
    assert_eq!((rotated.last_ip, rotated.user_agent), (s.last_ip, s.user_agent));
}

pub(crate) async fn rotation_with_a_stale_generation_changes_nothing(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    store.rotate_refresh(&rotation(&s, t + Duration::minutes(1))).await.unwrap().expect("CAS");
    let after_first = store.get_session(s.id).await.unwrap();

    // Same expected generation (0) again: the session is at 1 now.
    let stale = rotation(&s, t + Duration::minutes(2));
    assert_eq!(store.rotate_refresh(&stale).await.unwrap(), None);
    assert_eq!(store.get_session(s.id).await.unwrap(), after_first);
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "refresh/rotate"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.refreshed"]);
}

pub(crate) async fn rotation_of_a_revoked_or_expired_session_changes_nothing(store: Arc<dyn Store>) {
    let t = base();
    let revoked = session("u1", t);
    let expiring = session("u1", t);
    create(&*store, &revoked).await;
    create(&*store, &expiring).await;
    store.revoke_sessions(&RevokeTarget::Session(revoked.id), &revocation(reasons::LOGOUT, t)).await.unwrap();

    assert_eq!(store.rotate_refresh(&rotation(&revoked, t + Duration::minutes(1))).await.unwrap(), None);
    // Exactly at expires_at the session is already expired.
    assert_eq!(store.rotate_refresh(&rotation(&expiring, expiring.expires_at)).await.unwrap(), None);
    assert_eq!(store.get_session(expiring.id).await.unwrap(), Some(expiring.clone()));
    assert_eq!(actions_of(&*store, revoked.id).await, ["create/ok", "revoke/ok"]);
    assert_eq!(actions_of(&*store, expiring.id).await, ["create/ok"]);
    assert_eq!(subjects_of(&*store, expiring.id).await, ["session.created"]);
}

pub(crate) async fn concurrent_rotations_of_one_generation_let_exactly_one_through(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (store, r) = (store.clone(), rotation(&s, t + Duration::milliseconds(i + 1)));
            tokio::spawn(async move { store.rotate_refresh(&r).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(rotated) = task.await.unwrap().unwrap() {
            winners.push(rotated);
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].refresh_generation, 1);
    assert_eq!(store.get_session(s.id).await.unwrap().as_ref(), Some(&winners[0]));
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "refresh/rotate"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.refreshed"]);
}
