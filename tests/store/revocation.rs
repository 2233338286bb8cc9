//! Revocation (one session, a user's, a user's but one) and the expiry sweep.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use session_service::session::store::{Revocation, RevokeTarget, Store};
use session_service::session::{reasons, Actor, AuditRecord, SessionRecord, SessionStatus};
use uuid::Uuid;

use crate::fixtures::*;

pub(crate) async fn revoking_a_session_twice_revokes_it_once(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let rev = revocation(reasons::LOGOUT, t + Duration::minutes(1));

    let revoked = store.revoke_sessions(&RevokeTarget::Session(s.id), &rev).await.unwrap();
    assert_eq!(ids(&revoked), [s.id]);
    assert_eq!((revoked[0].status, revoked[0].revoked_at), (SessionStatus::Revoked, Some(rev.at)));
    assert_eq!(revoked[0].revoke_reason.as_deref(), Some(reasons::LOGOUT));
    assert_eq!(store.get_session(s.id).await.unwrap().as_ref(), Some(&revoked[0]));

    let later = t + Duration::minutes(2);
    assert!(revoke(&*store, s.id, reasons::LOGOUT_ALL, later).await.is_empty());
    assert_eq!(store.get_session(s.id).await.unwrap().as_ref(), Some(&revoked[0]));
    assert!(revoke(&*store, Uuid::new_v4(), reasons::LOGOUT, later).await.is_empty());
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.revoked"]);
}

pub(crate) async fn a_revocation_is_audited_with_its_actor_reason_and_ip(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let rev = revocation(reasons::LOGOUT, t + Duration::minutes(1));
    store.revoke_sessions(&RevokeTarget::Session(s.id), &rev).await.unwrap();

    let audit = audit_of(&*store, s.id).await;
    assert_eq!(audit.len(), 2);
    let r = &audit[1];
    assert_eq!((r.action.as_str(), r.outcome.as_str()), ("revoke", "ok"));
    assert_eq!((r.reason.as_deref(), &r.actor), (Some(reasons::LOGOUT), &rev.actor));
    assert_eq!((r.ip.as_deref(), r.at), (rev.ip.as_deref(), rev.at));
    assert_eq!((r.session_id, r.user_id.as_deref()), (Some(s.id), Some("u1")));
    let events = events_of(&*store, s.id).await;
    assert_eq!(events[1].payload["data"]["reason"], reasons::LOGOUT);
}

pub(crate) async fn a_revocation_s_cause_is_written_first_and_even_when_nothing_was_left_to_revoke(
    store: Arc<dyn Store>,
) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let detected = |at| AuditRecord::new(at, Actor::System, "refresh", "reuse").session(s.id, "u1");
    let first = t + Duration::minutes(1);
    let rev = Revocation { cause: Some(detected(first)), ..revocation(reasons::REFRESH_TOKEN_REUSE, first) };
    assert_eq!(ids(&store.revoke_sessions(&RevokeTarget::Session(s.id), &rev).await.unwrap()), [s.id]);
    let audit = audit_of(&*store, s.id).await;
    let steps: Vec<_> = audit.iter().map(|r| (r.action.as_str(), r.outcome.as_str())).collect();
    assert_eq!(steps, [("create", "ok"), ("refresh", "reuse"), ("revoke", "ok")]);

    // A concurrent change already ended the session: the detection is still on record.
    let again = t + Duration::minutes(2);
    let rev = Revocation { cause: Some(detected(again)), ..revocation(reasons::REFRESH_TOKEN_REUSE, again) };
    assert!(store.revoke_sessions(&RevokeTarget::Session(s.id), &rev).await.unwrap().is_empty());
    let audit = audit_of(&*store, s.id).await;
    assert_eq!(audit.len(), 4);
    assert_eq!((audit[3].action.as_str(), audit[3].at), ("refresh", again));
}

pub(crate) async fn revoking_a_user_revokes_their_active_sessions_but_the_spared_one(store: Arc<dyn Store>) {
    let t = base();
    let (a, b, spared) = (session("u1", t), session("u1", t), session("u1", t));
    let mut overdue = session("u1", t);
    overdue.expires_at = t + Duration::seconds(1);
    let stranger = session("u2", t);
    for s in [&a, &b, &spared, &overdue, &stranger] {
        create(&*store, s).await;
    }
    let rev = revocation(reasons::LOGOUT_ALL, t + Duration::minutes(1));

    let target = RevokeTarget::User { user_id: "u1".into(), except: Some(spared.id) };
    let revoked = store.revoke_sessions(&target, &rev).await.unwrap();
    assert_eq!(sorted_ids(&revoked), sorted_ids(&[a.clone(), b.clone()]));
    assert!(revoked.iter().all(|s| s.status == SessionStatus::Revoked));
    assert_eq!(status_of(&*store, spared.id).await, Some(SessionStatus::Active));
    // Expired in effect: left as it is, neither revoked nor announced.
    assert_eq!(store.get_session(overdue.id).await.unwrap(), Some(overdue.clone()));
    assert_eq!(subjects_of(&*store, overdue.id).await, ["session.created"]);
    assert_eq!(store.get_session(stranger.id).await.unwrap(), Some(stranger));
    for id in [a.id, b.id] {
        assert_eq!(subjects_of(&*store, id).await, ["session.created", "session.revoked"]);
    }
}

pub(crate) async fn revoking_a_user_twice_revokes_each_session_once(store: Arc<dyn Store>) {
    let t = base();
    let (a, b) = (session("u1", t), session("u1", t));
    create(&*store, &a).await;
    create(&*store, &b).await;
    let everyone = RevokeTarget::User { user_id: "u1".into(), except: None };
    let rev = revocation(reasons::LOGOUT_ALL, t + Duration::minutes(1));

    let revoked = store.revoke_sessions(&everyone, &rev).await.unwrap();
    assert_eq!(sorted_ids(&revoked), sorted_ids(&[a.clone(), b.clone()]));
    assert!(store.revoke_sessions(&everyone, &rev).await.unwrap().is_empty());
    for id in [a.id, b.id] {
        assert_eq!(actions_of(&*store, id).await, ["create/ok", "revoke/ok"]);
    }
}

pub(crate) async fn a_suspicious_revocation_also_emits_a_suspicious_event(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let mut rev = revocation(reasons::REFRESH_TOKEN_REUSE, t + Duration::minutes(1));
    (rev.actor, rev.suspicious) = (Actor::System, true);

    assert_eq!(store.revoke_sessions(&RevokeTarget::Session(s.id), &rev).await.unwrap().len(), 1);
    let events = events_of(&*store, s.id).await;
    let subjects: Vec<_> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["session.created", "session.revoked", "session.suspicious"]);
    let reasons = &events[2].payload["data"]["reasons"];
    assert_eq!(reasons, &serde_json::json!([reasons::REFRESH_TOKEN_REUSE]));
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok", "revoke/ok"]);
}

pub(crate) async fn the_sweep_expires_only_overdue_active_sessions_earliest_first(store: Arc<dyn Store>) {
    let t = base();
    let now = t + Duration::hours(1);
    // Due: three past their expiry, one exactly at it.
    let due: Vec<_> = [10, 20, 30, 60].iter().map(|m| expiring("u1", t, t + Duration::minutes(*m))).collect();
    let live = session("u1", t);
    let revoked = expiring("u1", t, t + Duration::minutes(5));
    for s in due.iter().chain([&live, &revoked]) {
        create(&*store, s).await;
    }
    revoke(&*store, revoked.id, reasons::LOGOUT, t).await;

    let first = by_expiry(store.expire_sessions(now, 2).await.unwrap());
    assert_eq!(ids(&first), ids(&due[..2]));
    assert!(first.iter().all(|s| s.status == SessionStatus::Expired && s.revoked_at.is_none()));
    let rest = by_expiry(store.expire_sessions(now, 100).await.unwrap());
    assert_eq!(ids(&rest), ids(&due[2..]));
    assert!(store.expire_sessions(now, 100).await.unwrap().is_empty());

    assert_eq!(status_of(&*store, due[0].id).await, Some(SessionStatus::Expired));
    assert_eq!(store.get_session(live.id).await.unwrap(), Some(live.clone()));
    assert_eq!(status_of(&*store, revoked.id).await, Some(SessionStatus::Revoked));
}

pub(crate) async fn an_expiry_is_audited_and_announced(store: Arc<dyn Store>) {
    let t = base();
    let s = expiring("u1", t, t + Duration::minutes(1));
    create(&*store, &s).await;
    let now = t + Duration::minutes(2);
    store.expire_sessions(now, 10).await.unwrap();

    let audit = audit_of(&*store, s.id).await;
    assert_eq!((audit[1].action.as_str(), audit[1].outcome.as_str()), ("expire", "ok"));
    assert_eq!((&audit[1].actor, audit[1].at), (&Actor::System, now));
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created", "session.expired"]);
}

fn expiring(user: &str, created_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> SessionRecord {
    SessionRecord { expires_at, ..session(user, created_at) }
}

fn by_expiry(mut sessions: Vec<SessionRecord>) -> Vec<SessionRecord> {
    sessions.sort_by_key(|s| s.expires_at);
    sessions
}
