//! The revocation feed on SQLite: the `session.revoked` rows of the outbox by `feed_seq`
//! (migration 0004), a counter bumped by a trigger inside the writing transaction. SQLite runs one
//! write transaction at a time, so sequence order is commit order and every number up to the
//! counter's value is final: a cursor at the counter has passed nothing that can still appear.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::db_error;
use super::rows::micros;
use crate::session::store::{FeedPage, FeedPosition, FeedQuery, RevokedSession, StoreError};
use crate::store::driver::corrupt;

/// The counter (one row even when nothing follows the cursor), then up to `?3` rows after
/// sequence `?1` made at or after `?2`, in order. One statement, so one snapshot: the rows seen
/// are exactly those up to the counter read.
const PAGE: &str = "
    SELECT h.last AS head, o.feed_seq, o.session_id, o.user_id, o.created_at
    FROM revocation_feed_seq h
    LEFT JOIN (
        SELECT feed_seq, json_extract(payload, '$.data.session_id') AS session_id,
               json_extract(payload, '$.data.user_id') AS user_id, created_at
        FROM outbox
        WHERE feed_seq > ?1 AND created_at >= ?2
        ORDER BY feed_seq
        LIMIT ?3
    ) o ON TRUE
    WHERE h.id = 1
    ORDER BY o.feed_seq";

pub(super) async fn revocations(pool: &SqlitePool, query: &FeedQuery) -> Result<FeedPage, StoreError> {
    let after = query.after.unwrap_or_default();
    let from = i64::try_from(after.major).unwrap_or(i64::MAX);
    let found = sqlx::query(PAGE)
        .bind(from)
        .bind(micros(query.since))
        .bind(i64::from(query.limit) + 1)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let head = match found.first() {
        Some(row) => seq(row, "head")?,
        None => return Err(corrupt("revocation_feed_seq", "no counter row")),
    };
    let mut entries = Vec::with_capacity(found.len());
    for row in &found {
        if row.try_get::<Option<i64>, _>("feed_seq").map_err(db_error)?.is_some() {
            entries.push((seq(row, "feed_seq")?, revoked(row)?));
        }
    }
    let has_more = entries.len() > query.limit as usize;
    entries.truncate(query.limit as usize);
    let major = match entries.last() {
        Some((last, _)) if has_more => *last,
        _ => head,
    };
    let cursor = FeedPosition { major, minor: Uuid::nil() }.max(after);
    Ok(FeedPage { revocations: entries.into_iter().map(|(_, r)| r).collect(), cursor, has_more })
}

fn seq(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(column).map_err(db_error)?;
    u64::try_from(n).map_err(|_| corrupt(column, n))
}

fn revoked(row: &SqliteRow) -> Result<RevokedSession, StoreError> {
    let session_id: Option<String> = row.try_get("session_id").map_err(db_error)?;
    let session_id = session_id.as_deref().and_then(|s| Uuid::try_parse(s).ok());
    let user_id: Option<String> = row.try_get("user_id").map_err(db_error)?;
    let at: i64 = row.try_get("created_at").map_err(db_error)?;
    let revoked_at = chrono::DateTime::from_timestamp_micros(at).ok_or_else(|| corrupt("outbox.created_at", at))?;
    match (session_id, user_id) {
        (Some(session_id), Some(user_id)) => Ok(RevokedSession { session_id, user_id, revoked_at }),
        _ => Err(corrupt("session.revoked event", "no data.session_id or data.user_id")),
    }
}
