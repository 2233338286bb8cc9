//! Creating, reading and listing sessions.

use std::sync::Arc;

use chrono::Duration;
use serde_json::json;
use session_service::session::store::{Creation, ListQuery, StatusFilter, Store, StoreError};
use session_service::session::{reasons, SessionStatus};
use uuid::Uuid;

use crate::fixtures::*;

pub(crate) async fn a_created_session_reads_back_with_every_field_equal(store: Arc<dyn Store>) {
    let t = base();
    let full = session("u1", t);
    let audit = created_audit(&full);
    assert!(store.create_session(&Creation::new(&full, 10, audit.clone())).await.unwrap().is_empty());
    assert_eq!(store.get_session(full.id).await.unwrap(), Some(full.clone()));
    assert_eq!(audit_of(&*store, full.id).await, [audit]);
    assert_eq!(subjects_of(&*store, full.id).await, ["session.created"]);
    assert_eq!(store.get_session(Uuid::new_v4()).await.unwrap(), None);
}

pub(crate) async fn empty_and_later_set_fields_read_back_equal_too(store: Arc<dyn Store>) {
    let t = base();
    let mut sparse = session("u1", t);
    sparse.device.name = None;
    sparse.device.model = None;
    sparse.device.app_version = None;
    sparse.device.fingerprint = None;
    (sparse.first_ip, sparse.last_ip, sparse.user_agent) = (None, None, None);
    sparse.metadata = json!({});
    // Fields only later changes set, one microsecond apart: precision is kept exactly.
    sparse.last_seen_at = Some(t + Duration::microseconds(1));
    sparse.rotated_at = Some(t + Duration::microseconds(2));
    sparse.prev_refresh_hash = Some(hash());
    sparse.refresh_generation = 7;
    create(&*store, &sparse).await;
    assert_eq!(store.get_session(sparse.id).await.unwrap(), Some(sparse));
}

pub(crate) async fn creating_a_session_id_twice_is_a_conflict(store: Arc<dyn Store>) {
    let s = session("u1", base());
    create(&*store, &s).await;
    let again = store.create_session(&Creation::new(&s, 10, created_audit(&s))).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(actions_of(&*store, s.id).await, ["create/ok"]);
    assert_eq!(subjects_of(&*store, s.id).await, ["session.created"]);
}

pub(crate) async fn listing_returns_active_or_all_sessions_newest_first(store: Arc<dyn Store>) {
    let t = base();
    let oldest = session("u1", t);
    let mut overdue = session("u1", t + Duration::seconds(1));
    overdue.expires_at = t + Duration::seconds(5);
    let revoked = session("u1", t + Duration::seconds(2));
    let newest = session("u1", t + Duration::seconds(3));
    let stranger = session("u2", t + Duration::seconds(4));
    for s in [&oldest, &overdue, &revoked, &newest, &stranger] {
        create(&*store, s).await;
    }
    let now = t + Duration::seconds(10);
    revoke(&*store, revoked.id, reasons::LOGOUT, now).await;

    let active = list(&*store, "u1", StatusFilter::Active, now).await;
    assert_eq!(ids(&active), [newest.id, oldest.id]);
    let all = list(&*store, "u1", StatusFilter::All, now).await;
    assert_eq!(ids(&all), [newest.id, revoked.id, overdue.id, oldest.id]);
    // Listing reports stored state: the overdue session is expired only in effect.
    assert_eq!((all[1].status, all[2].status), (SessionStatus::Revoked, SessionStatus::Active));
    assert!(list(&*store, "nobody", StatusFilter::All, now).await.is_empty());
}

pub(crate) async fn listing_pages_through_sessions_with_a_keyset_cursor(store: Arc<dyn Store>) {
    let t = base();
    // Three share a creation time, so the id must break the tie consistently.
    let offsets = [0, 1, 1, 1, 2, 3, 4];
    let created: Vec<_> = offsets.iter().map(|s| session("u1", t + Duration::seconds(*s))).collect();
    for s in &created {
        create(&*store, s).await;
    }
    let mut expected = created.clone();
    expected.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let query = ListQuery { filter: StatusFilter::All, now: t, limit: 3, after };
        let page = store.list_user_sessions("u1", &query).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id));
        pages.push(ids(&page));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), ids(&expected));
}
