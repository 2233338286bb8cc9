//! The relay's side of the outbox: claims (oldest first, released undelivered when dropped, never
//! sharing a session's events with another claim while held) and retention (bounded, by age,
//! delivered rows only or any).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use session_service::session::reasons;
use session_service::session::store::{OutboxPrune, Store};

use crate::fixtures::*;

pub(crate) async fn a_claim_takes_the_oldest_undelivered_events_and_marking_delivers_them(store: Arc<dyn Store>) {
    let t = base();
    let seconds = Duration::seconds;
    let (a, b, c) = (session("u1", t), session("u2", t + seconds(1)), session("u3", t + seconds(2)));
    for s in [&a, &b, &c] {
        create(&*store, s).await;
    }
    let claim = store.claim_events(2).await.unwrap();
    let claimed: Vec<_> = claim.events.iter().map(|e| e.payload["subject"].clone()).collect();
    assert_eq!(claimed, [serde_json::json!(a.id), serde_json::json!(b.id)]);
    let first = claim.events[0].id;
    claim.mark_sent(&[first], t + seconds(3)).await.unwrap();

    // The unmarked event of the claim is undelivered again, before the newer one.
    let pending = store.pending_events(10).await.unwrap();
    assert_eq!(pending.iter().map(|e| e.created_at).collect::<Vec<_>>(), [t + seconds(1), t + seconds(2)]);
    let next = store.claim_events(10).await.unwrap();
    assert_eq!(next.events, pending);
    let all: Vec<_> = next.events.iter().map(|e| e.id).collect();
    next.mark_sent(&all, t + seconds(4)).await.unwrap();
    assert!(store.claim_events(10).await.unwrap().events.is_empty());
}

pub(crate) async fn a_dropped_claim_leaves_every_event_undelivered(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    revoke(&*store, s.id, reasons::LOGOUT, t + Duration::seconds(1)).await;
    let claim = store.claim_events(10).await.unwrap();
    assert_eq!(claim.events.len(), 2);
    let claimed = claim.events.clone();
    drop(claim);
    assert_eq!(store.pending_events(10).await.unwrap(), claimed);
    assert_eq!(store.claim_events(10).await.unwrap().events, claimed);
}

/// While a claim holds a session's first event, no other claim may take that session's later
/// one. Postgres: the other claim takes the other sessions' events at once. SQLite (one relay):
/// the other claim waits until the first is released.
pub(crate) async fn a_held_claim_keeps_its_sessions_events_from_every_other_claim(store: Arc<dyn Store>) {
    let t = base();
    let seconds = Duration::seconds;
    let (a, b) = (session("u1", t), session("u2", t + seconds(1)));
    create(&*store, &a).await;
    create(&*store, &b).await;
    revoke(&*store, a.id, reasons::LOGOUT, t + seconds(2)).await;
    let held = store.claim_events(1).await.unwrap();
    assert_eq!(held.events.len(), 1);
    assert_eq!(held.events[0].payload["subject"], serde_json::json!(a.id));

    let other = match store.backend() {
        "postgres" => store.claim_events(10).await.unwrap(),
        _ => {
            let waiting = tokio::spawn({
                let store = store.clone();
                async move { store.claim_events(10).await.unwrap() }
            });
            tokio::time::sleep(StdDuration::from_millis(200)).await;
            assert!(!waiting.is_finished(), "a second claim on SQLite waits for the first");
            let first = held.events[0].id;
            held.mark_sent(&[first], t + seconds(3)).await.unwrap();
            let other = waiting.await.unwrap();
            let subjects: Vec<_> = other.events.iter().map(|e| e.subject.as_str()).collect();
            assert_eq!(subjects, ["session.created", "session.revoked"]);
            return;
        }
    };
    let subjects: Vec<_> = other.events.iter().map(|e| (e.payload["subject"].clone(), e.subject.as_str())).collect();
    assert_eq!(subjects, [(serde_json::json!(b.id), "session.created")], "a's revocation waits for a's claim");
    drop(other);
    let first = held.events[0].id;
    held.mark_sent(&[first], t + seconds(3)).await.unwrap();
    let rest = store.claim_events(10).await.unwrap();
    let subjects: Vec<_> = rest.events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["session.created", "session.revoked"]);
}

pub(crate) async fn pruning_delivered_rows_never_deletes_an_undelivered_one(store: Arc<dyn Store>) {
    let t = base();
    let (old, older, new) =
        (session("u1", t - Duration::days(2)), session("u2", t - Duration::days(3)), session("u3", t));
    for s in [&old, &older, &new] {
        create(&*store, s).await;
    }
    let pending = store.pending_events(10).await.unwrap();
    let (oldest, second, newest) = (pending[0].id, pending[1].id, pending[2].id);
    store.mark_events_sent(&[oldest, newest], t).await.unwrap();

    let cutoff = t - Duration::days(1);
    assert_eq!(store.prune_outbox(OutboxPrune::Delivered, cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.prune_outbox(OutboxPrune::Delivered, cutoff, 100).await.unwrap(), 0);
    let left = store.pending_events(10).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [second], "the old undelivered row stays");
    // The delivered row newer than the cutoff stays too: pruning everything up to now takes it.
    assert_eq!(store.prune_outbox(OutboxPrune::Delivered, t + Duration::seconds(1), 100).await.unwrap(), 1);
    assert_eq!(store.pending_events(10).await.unwrap().len(), 1);
}

pub(crate) async fn pruning_any_rows_deletes_old_ones_whatever_their_state_in_bounded_batches(store: Arc<dyn Store>) {
    let t = base();
    let old: Vec<_> = (0..5).map(|i| session("u1", t - Duration::days(2) + Duration::seconds(i))).collect();
    for s in &old {
        create(&*store, s).await;
    }
    let recent = session("u2", t);
    create(&*store, &recent).await;
    let first = store.pending_events(1).await.unwrap()[0].id;
    store.mark_events_sent(&[first], t).await.unwrap();

    let cutoff = t - Duration::days(1);
    assert_eq!(store.prune_outbox(OutboxPrune::Any, cutoff, 2).await.unwrap(), 2, "at most the limit");
    assert_eq!(store.prune_outbox(OutboxPrune::Any, cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.prune_outbox(OutboxPrune::Any, cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.prune_outbox(OutboxPrune::Any, cutoff, 2).await.unwrap(), 0);
    let left = store.pending_events(10).await.unwrap();
    assert_eq!(left.iter().map(|e| e.payload["subject"].clone()).collect::<Vec<_>>(), [serde_json::json!(recent.id)]);
}
