//! Reconciliation: of the sessions a node holds connections for, which are no longer active, and
//! why (the stored revoke reason, "expired" or "deleted").

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use session_service::session::store::Store;
use session_service::session::{reasons, SessionRecord};
use uuid::Uuid;

use crate::fixtures::*;

/// An active session of `user` created at `at` that expires at `expires_at`.
fn expiring(user: &str, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> SessionRecord {
    SessionRecord { expires_at, ..session(user, at) }
}

/// What `inactive_among` answers, sorted (its order is not part of the contract).
async fn inactive(store: &dyn Store, ids: &[Uuid], now: DateTime<Utc>) -> Vec<(Uuid, String)> {
    let mut found = store.inactive_among(ids, now).await.expect("inactive_among");
    found.sort();
    found
}

/// `(id, why)` pairs, sorted, to compare with [`inactive`].
fn expected(pairs: &[(Uuid, &str)]) -> Vec<(Uuid, String)> {
    let mut pairs: Vec<_> = pairs.iter().map(|(id, why)| (*id, (*why).to_owned())).collect();
    pairs.sort();
    pairs
}

pub(crate) async fn inactive_among_reports_revoked_expired_and_missing_sessions_but_not_active_ones(
    store: Arc<dyn Store>,
) {
    let t = base();
    let now = t + Duration::hours(1);
    let active = session("u1", t);
    // Active until one microsecond after `now`, so still active then.
    let barely_active = expiring("u1", t, now + Duration::microseconds(1));
    let logged_out = session("u1", t);
    let reused = session("u2", t);
    // Active in storage but past its expiry (and one exactly at it): expired, though unswept.
    let overdue = expiring("u1", t, t + Duration::minutes(10));
    let due_now = expiring("u1", t, now);
    let swept = expiring("u2", t, t + Duration::minutes(5));
    // Revoked first, then past its expiry too: the revocation is what it reports.
    let revoked_then_overdue = expiring("u2", t, t + Duration::minutes(20));
    let deleted = session("u2", t);
    for s in
        [&active, &barely_active, &logged_out, &reused, &overdue, &due_now, &swept, &revoked_then_overdue, &deleted]
    {
        create(&*store, s).await;
    }
    revoke(&*store, logged_out.id, reasons::LOGOUT, t + Duration::seconds(1)).await;
    revoke(&*store, reused.id, reasons::REFRESH_TOKEN_REUSE, t + Duration::seconds(2)).await;
    revoke(&*store, revoked_then_overdue.id, reasons::LOGOUT_ALL, t + Duration::seconds(3)).await;
    assert_eq!(ids(&store.expire_sessions(t + Duration::minutes(6), 100).await.unwrap()), [swept.id]);
    store.delete_session(deleted.id, &revocation(reasons::LOGOUT, t)).await.unwrap().expect("existed");
    let never = Uuid::new_v4();

    let asked = [
        active.id,
        barely_active.id,
        logged_out.id,
        reused.id,
        overdue.id,
        due_now.id,
        swept.id,
        revoked_then_overdue.id,
        deleted.id,
        never,
    ];
    let answer = inactive(&*store, &asked, now).await;
    assert_eq!(
        answer,
        expected(&[
            (logged_out.id, reasons::LOGOUT),
            (reused.id, reasons::REFRESH_TOKEN_REUSE),
            (overdue.id, reasons::EXPIRED),
            (due_now.id, reasons::EXPIRED),
            (swept.id, reasons::EXPIRED),
            (revoked_then_overdue.id, reasons::LOGOUT_ALL),
            (deleted.id, reasons::DELETED),
            (never, reasons::DELETED),
        ])
    );

    // Earlier, before any expiry: the swept session is still expired (its stored status says so)
    // while the unswept ones were active then.
    let earlier = inactive(&*store, &[overdue.id, due_now.id, swept.id, active.id], t + Duration::minutes(1)).await;
    assert_eq!(earlier, expected(&[(swept.id, reasons::EXPIRED)]));
}

pub(crate) async fn inactive_among_an_empty_list_or_only_active_sessions_reports_nothing(store: Arc<dyn Store>) {
    let t = base();
    let (a, b) = (session("u1", t), session("u2", t));
    create(&*store, &a).await;
    create(&*store, &b).await;
    assert!(store.inactive_among(&[], t).await.unwrap().is_empty());
    assert!(store.inactive_among(&[a.id, b.id], t + Duration::days(29)).await.unwrap().is_empty());
    // The same two, once past their expiry, are both reported: the empty answers were no accident.
    let later = t + Duration::days(30);
    assert_eq!(inactive(&*store, &[a.id, b.id], later).await, expected(&[(a.id, "expired"), (b.id, "expired")]));
}

pub(crate) async fn inactive_among_reports_an_id_given_twice_once(store: Arc<dyn Store>) {
    let t = base();
    let s = session("u1", t);
    create(&*store, &s).await;
    revoke(&*store, s.id, reasons::LOGOUT, t).await;
    let never = Uuid::new_v4();
    let answer = inactive(&*store, &[s.id, never, s.id, never, s.id], t).await;
    assert_eq!(answer, expected(&[(s.id, reasons::LOGOUT), (never, reasons::DELETED)]));
}

/// 1,200 ids, so SQLite looks them up in three chunks; the real sessions sit at the edges of
/// those chunks (in id order, the order they are chunked in), and the ids are asked about in
/// another order.
pub(crate) async fn inactive_among_1200_ids_answers_for_every_one_across_chunks(store: Arc<dyn Store>) {
    const ASKED: usize = 1_200;
    let t = base();
    let now = t + Duration::hours(1);
    let mut sorted: Vec<Uuid> = (0..ASKED).map(|_| Uuid::new_v4()).collect();
    sorted.sort();
    let edges = [0, 1, 498, 499, 500, 501, 998, 999, 1_000, 1_001, 1_198, 1_199];
    let real: Vec<Uuid> = edges.iter().map(|&i| sorted[i]).collect();

    // Active, revoked and overdue in turn, so each chunk holds some of each.
    let mut want: Vec<(Uuid, &str)> = Vec::new();
    for (n, &id) in real.iter().enumerate() {
        let mut s = SessionRecord { id, ..session("u1", t) };
        match n % 3 {
            0 => create(&*store, &s).await,
            1 => {
                create(&*store, &s).await;
                revoke(&*store, id, reasons::LOGOUT, t).await;
                want.push((id, reasons::LOGOUT));
            }
            _ => {
                s.expires_at = t + Duration::minutes(1);
                create(&*store, &s).await;
                want.push((id, reasons::EXPIRED));
            }
        }
    }
    want.extend(sorted.iter().filter(|id| !real.contains(id)).map(|id| (*id, reasons::DELETED)));
    let mut asked = sorted.clone();
    asked.reverse();
    asked.rotate_left(350);

    let answer = inactive(&*store, &asked, now).await;
    assert_eq!(answer.len(), ASKED - 4, "every id but the four active ones is reported");
    assert!(answer == expected(&want), "some id is reported wrongly or not at all");
}
