//! The revocation feed: `session.revoked` events in commit order behind a cursor that never
//! skips one, paged, and only those still mattering. The last story is Postgres' own: a
//! transaction that started first and commits last must not be passed by the cursor.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use session_service::session::store::{
    Creation, FeedPage, FeedPosition, FeedQuery, RevokeTarget, RevokedSession, Store,
};
use session_service::session::{reasons, SessionRecord};
use uuid::Uuid;

use crate::fixtures::*;

/// Reads the feed after `after`, counting revocations made since `since`.
async fn read(store: &dyn Store, after: Option<FeedPosition>, since: DateTime<Utc>, limit: u32) -> FeedPage {
    store.revocations(&FeedQuery { after, since, limit }).await.expect("the feed reads")
}

/// Reads until the page holds `n` revocations (bounded). On Postgres a committed revocation
/// appears once every transaction older than it on the server has finished, and the shared test
/// server runs other tests' transactions meanwhile.
async fn read_settled(store: &dyn Store, after: Option<FeedPosition>, since: DateTime<Utc>, n: usize) -> FeedPage {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = read(store, after, since, 100).await;
        if page.revocations.len() >= n || std::time::Instant::now() >= deadline {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn entry(s: &SessionRecord, at: DateTime<Utc>) -> RevokedSession {
    RevokedSession { session_id: s.id, user_id: s.user_id.clone(), revoked_at: at }
}

pub(crate) async fn the_feed_lists_revocations_in_order_and_continues_from_its_cursor(store: Arc<dyn Store>) {
    let t = base();
    let since = t - Duration::hours(1);
    let empty = read(&*store, None, since, 10).await;
    assert!(empty.revocations.is_empty() && !empty.has_more);
    let (a, b, c) = (session("u1", t), session("u2", t), session("u3", t));
    for s in [&a, &b, &c] {
        create(&*store, s).await;
    }
    let (t1, t2, t3) = (t + Duration::seconds(1), t + Duration::seconds(2), t + Duration::seconds(3));
    revoke(&*store, a.id, reasons::LOGOUT, t1).await;
    revoke(&*store, b.id, reasons::LOGOUT, t2).await;

    let first = read_settled(&*store, None, since, 2).await;
    assert_eq!(first.revocations, [entry(&a, t1), entry(&b, t2)]);
    assert!(!first.has_more);
    assert!(first.cursor >= empty.cursor, "a cursor never moves back");
    let nothing_new = read(&*store, Some(first.cursor), since, 10).await;
    assert!(nothing_new.revocations.is_empty());
    assert!(nothing_new.cursor >= first.cursor);

    revoke(&*store, c.id, reasons::LOGOUT, t3).await;
    // Revoking again revokes nothing: no second entry.
    revoke(&*store, a.id, reasons::LOGOUT, t3).await;
    let second = read_settled(&*store, Some(nothing_new.cursor), since, 1).await;
    assert_eq!(second.revocations, [entry(&c, t3)]);
    assert!(read(&*store, Some(second.cursor), since, 10).await.revocations.is_empty());
    // From an earlier cursor, the same revocations again.
    assert_eq!(read(&*store, Some(first.cursor), since, 10).await.revocations, [entry(&c, t3)]);
}

pub(crate) async fn the_feed_pages_through_a_user_wide_revocation_without_losing_one(store: Arc<dyn Store>) {
    let t = base();
    let sessions: Vec<SessionRecord> = (0..5).map(|_| session("many", t)).collect();
    for s in &sessions {
        store.create_session(&Creation::new(s, 100, created_audit(s))).await.unwrap();
    }
    let at = t + Duration::seconds(1);
    let target = RevokeTarget::User { user_id: "many".into(), except: None };
    let revoked = store.revoke_sessions(&target, &revocation(reasons::LOGOUT_ALL, at)).await.unwrap();
    assert_eq!(revoked.len(), 5);

    let since = t - Duration::hours(1);
    assert_eq!(read_settled(&*store, None, since, 5).await.revocations.len(), 5);
    let (mut seen, mut cursor, mut sizes) = (Vec::new(), None, Vec::new());
    for _ in 0..10 {
        let page = read(&*store, cursor, since, 2).await;
        sizes.push((page.revocations.len(), page.has_more));
        seen.extend(page.revocations.iter().map(|r| r.session_id));
        assert!(cursor.is_none_or(|c| page.cursor >= c));
        cursor = Some(page.cursor);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(sizes, [(2, true), (2, true), (1, false)]);
    seen.sort();
    assert_eq!(seen, sorted_ids(&revoked));
}

pub(crate) async fn the_feed_skips_revocations_that_no_longer_matter(store: Arc<dyn Store>) {
    let t = base();
    let (old, recent) = (session("u1", t), session("u2", t));
    create(&*store, &old).await;
    create(&*store, &recent).await;
    revoke(&*store, old.id, reasons::LOGOUT, t + Duration::seconds(1)).await;
    revoke(&*store, recent.id, reasons::LOGOUT, t + Duration::minutes(20)).await;
    let since = t + Duration::minutes(10);
    let page = read_settled(&*store, None, since, 1).await;
    assert_eq!(page.revocations, [entry(&recent, t + Duration::minutes(20))]);
}

pub(crate) async fn deletion_and_eviction_revocations_are_in_the_feed_but_expiry_is_not(store: Arc<dyn Store>) {
    let t = base();
    let (deleted, expiring) = (session("u1", t), session("u2", t));
    create(&*store, &deleted).await;
    create(&*store, &expiring).await;
    let start = read(&*store, None, t - Duration::hours(1), 10).await;
    assert!(start.revocations.is_empty());
    let at = t + Duration::seconds(1);
    store.delete_session(deleted.id, &revocation(reasons::REVOKED_BY_SERVICE, at)).await.unwrap();
    // The cap of one evicts the first session of u3 when the second is created.
    let first = session("u3", t);
    store.create_session(&Creation::new(&first, 1, created_audit(&first))).await.unwrap();
    let second = session("u3", at);
    let evicted = store.create_session(&Creation::new(&second, 1, created_audit(&second))).await.unwrap();
    assert_eq!(ids(&evicted), [first.id]);
    store.expire_sessions(expiring.expires_at + Duration::seconds(1), 10).await.unwrap();

    let page = read_settled(&*store, Some(start.cursor), t - Duration::hours(1), 2).await;
    let revoked: Vec<Uuid> = page.revocations.iter().map(|r| r.session_id).collect();
    assert_eq!(revoked, [deleted.id, first.id]);
}

/// Postgres: transaction A writes a revocation and stays open; B, started later, commits one.
/// The feed must hold B's back (and keep its cursor before A's) until A commits; then a read from
/// that cursor returns both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cursor_never_passes_a_revocation_committed_out_of_order() {
    let url = session_test_support::db::postgres_url().await;
    let store = session_service::store::connect(&url).await.expect("connect postgres");
    let outcome = crate::run(out_of_order(store, &url)).await;
    session_test_support::db::drop_postgres(&url).await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

async fn out_of_order(store: Arc<dyn Store>, url: &str) {
    let t = base();
    let since = t - Duration::hours(1);
    let (a, b) = (session("ua", t), session("ub", t));
    create(&*store, &a).await;
    create(&*store, &b).await;
    let start = read(&*store, None, since, 10).await;

    let raw = sqlx::PgPool::connect(url).await.expect("a second connection");
    let mut tx = raw.begin().await.unwrap();
    // A: revoke `a` by hand, as the store would, and leave the transaction open.
    let at_a = t + Duration::seconds(1);
    let event = session_service::session::OutboxEvent::revoked(&a, at_a, reasons::LOGOUT);
    sqlx::query("UPDATE sessions SET status = 'revoked', revoked_at = $2, revoke_reason = 'logout' WHERE id = $1")
        .bind(a.id)
        .bind(at_a)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO outbox (id, subject, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(event.id)
        .bind(&event.subject)
        .bind(&event.payload)
        .bind(event.created_at)
        .execute(&mut *tx)
        .await
        .unwrap();
    // B: started after A, committed first.
    let at_b = t + Duration::seconds(2);
    assert_eq!(ids(&revoke(&*store, b.id, reasons::LOGOUT, at_b).await), [b.id]);

    let held = read(&*store, Some(start.cursor), since, 10).await;
    assert!(held.revocations.is_empty(), "B is held back while A is open: {:?}", held.revocations);
    tx.commit().await.unwrap();
    let both = read_settled(&*store, Some(held.cursor), since, 2).await;
    assert_eq!(both.revocations, [entry(&a, at_a), entry(&b, at_b)], "A's transaction id is the lower");
    raw.close().await;
}
