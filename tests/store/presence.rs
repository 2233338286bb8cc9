//! Presence: heartbeat flushes move `last_seen_at` forward and touch nothing else.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::{stream, StreamExt};
use session_service::session::store::{AuditQuery, StatusFilter, Store};
use session_service::session::{reasons, AuditRecord, OutboxEvent, SessionRecord};
use uuid::Uuid;

use crate::fixtures::*;

/// The stored `last_seen_at` of session `id` (which must exist).
async fn last_seen(store: &dyn Store, id: Uuid) -> Option<DateTime<Utc>> {
    store.get_session(id).await.expect("get").expect("exists").last_seen_at
}

/// `s` as a flush at `at` leaves it.
fn seen_at(s: &SessionRecord, at: DateTime<Utc>) -> SessionRecord {
    SessionRecord { last_seen_at: Some(at), ..s.clone() }
}

/// Every audit record and every pending event in the store, to show a flush adds none.
async fn whole_trail(store: &dyn Store) -> (Vec<AuditRecord>, Vec<OutboxEvent>) {
    let everything = AuditQuery { session_id: None, user_id: None, limit: 100_000, before: None };
    let audit = store.list_audit(&everything).await.expect("list audit");
    (audit, store.pending_events(100_000).await.expect("pending events"))
}

pub(crate) async fn last_seen_is_recorded_to_the_microsecond_and_never_moves_back(store: Arc<dyn Store>) {
    let t = base();
    let us = Duration::microseconds;
    let s = session("u1", t);
    create(&*store, &s).await;
    assert_eq!(last_seen(&*store, s.id).await, None);

    let first = t + Duration::seconds(5) + us(7);
    assert_eq!(store.touch_last_seen(&[(s.id, first)]).await.unwrap(), 1);
    assert_eq!(last_seen(&*store, s.id).await, Some(first));

    // An older or the same time (a late flush from another node) changes nothing.
    assert_eq!(store.touch_last_seen(&[(s.id, first - us(1))]).await.unwrap(), 0);
    assert_eq!(store.touch_last_seen(&[(s.id, t)]).await.unwrap(), 0);
    assert_eq!(store.touch_last_seen(&[(s.id, first)]).await.unwrap(), 0);
    assert_eq!(last_seen(&*store, s.id).await, Some(first));

    // One microsecond later is later.
    assert_eq!(store.touch_last_seen(&[(s.id, first + us(1))]).await.unwrap(), 1);
    assert_eq!(last_seen(&*store, s.id).await, Some(first + us(1)));
}

pub(crate) async fn unknown_ids_are_ignored_and_the_count_says_how_many_rows_changed(store: Arc<dyn Store>) {
    let t = base();
    let (a, b) = (session("u1", t), session("u1", t));
    let mut ahead = session("u2", t);
    ahead.last_seen_at = Some(t + Duration::seconds(10));
    for s in [&a, &b, &ahead] {
        create(&*store, s).await;
    }

    let at = t + Duration::seconds(5);
    let flush = [(a.id, at), (Uuid::new_v4(), at), (b.id, at), (ahead.id, at), (Uuid::new_v4(), at)];
    assert_eq!(store.touch_last_seen(&flush).await.unwrap(), 2);
    assert_eq!(last_seen(&*store, a.id).await, Some(at));
    assert_eq!(last_seen(&*store, b.id).await, Some(at));
    assert_eq!(last_seen(&*store, ahead.id).await, Some(t + Duration::seconds(10)));

    let strangers = [(Uuid::new_v4(), at), (Uuid::new_v4(), at)];
    assert_eq!(store.touch_last_seen(&strangers).await.unwrap(), 0);
}

pub(crate) async fn an_empty_flush_returns_zero_and_changes_nothing(store: Arc<dyn Store>) {
    let s = session("u1", base());
    create(&*store, &s).await;
    assert_eq!(store.touch_last_seen(&[]).await.unwrap(), 0);
    assert_eq!(store.get_session(s.id).await.unwrap(), Some(s));
}

pub(crate) async fn an_id_given_twice_in_one_flush_keeps_its_latest_time(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    let (early, late) = (t + Duration::seconds(1), t + Duration::seconds(2));
    assert_eq!(store.touch_last_seen(&[(s.id, late), (s.id, early)]).await.unwrap(), 1);
    assert_eq!(last_seen(&*store, s.id).await, Some(late));
    let later = t + Duration::seconds(3);
    assert_eq!(store.touch_last_seen(&[(s.id, early), (s.id, later), (s.id, late)]).await.unwrap(), 1);
    assert_eq!(last_seen(&*store, s.id).await, Some(later));
}

pub(crate) async fn a_flush_of_2500_sessions_lands_every_entry(store: Arc<dyn Store>) {
    const USERS: usize = 50;
    const PER_USER: usize = 50;
    let t = base();
    let created: Vec<_> = (0..USERS * PER_USER).map(|i| session(&format!("u{}", i % USERS), t)).collect();
    stream::iter(&created).for_each_concurrent(8, |s| create(&*store, s)).await;
    let trail = whole_trail(&*store).await;
    assert_eq!((trail.0.len(), trail.1.len()), (created.len(), created.len()));

    // A distinct time per session, so an entry landing on the wrong row would show.
    let flush: Vec<_> =
        created.iter().enumerate().map(|(i, s)| (s.id, t + Duration::microseconds(i as i64 + 1))).collect();
    assert_eq!(store.touch_last_seen(&flush).await.unwrap(), 2_500);

    let mut expected: Vec<_> = created.iter().zip(&flush).map(|(s, (_, at))| seen_at(s, *at)).collect();
    expected.sort_by_key(|s| s.id);
    let mut stored = Vec::new();
    for user in 0..USERS {
        let user = format!("u{user}");
        stored.extend(list(&*store, &user, StatusFilter::All, t).await);
    }
    stored.sort_by_key(|s| s.id);
    assert!(stored == expected, "a flushed session reads back different from what was flushed");
    assert!(whole_trail(&*store).await == trail, "the flush wrote audit records or events");

    // The same flush again changes nothing.
    assert_eq!(store.touch_last_seen(&flush).await.unwrap(), 0);
}

pub(crate) async fn a_flush_changes_nothing_but_last_seen_and_leaves_no_trail(store: Arc<dyn Store>) {
    let t = base();
    let plain = session("u1", t);
    let rotated = session("u1", t);
    let revoked = session("u1", t);
    let mut overdue = session("u1", t);
    overdue.expires_at = t + Duration::seconds(5);
    for s in [&plain, &rotated, &revoked, &overdue] {
        create(&*store, s).await;
    }
    store.rotate_refresh(&rotation(&rotated, t + Duration::seconds(1))).await.unwrap().expect("rotated");
    revoke(&*store, revoked.id, reasons::LOGOUT, t + Duration::seconds(2)).await;

    let mut before = Vec::new();
    for s in [&plain, &rotated, &revoked, &overdue] {
        before.push(store.get_session(s.id).await.unwrap().expect("exists"));
    }
    let trail = whole_trail(&*store).await;

    // Later than the overdue session's expiry: a flush neither extends nor expires anything, and
    // it records presence whatever the status (a flush may trail a revocation).
    let at = t + Duration::minutes(1);
    let flush: Vec<_> = before.iter().map(|s| (s.id, at)).collect();
    assert_eq!(store.touch_last_seen(&flush).await.unwrap(), 4);
    for s in &before {
        assert_eq!(store.get_session(s.id).await.unwrap(), Some(seen_at(s, at)));
    }
    assert_eq!(whole_trail(&*store).await, trail);
}
