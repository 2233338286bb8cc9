//! The revocation feed on Postgres: the `session.revoked` rows of the outbox in the order of
//! their writing transactions (`feed_xid`, migration 0004), up to the reader's snapshot xmin.
//!
//! Why xmin: transactions commit out of id order, so a row with a higher `feed_xid` may be
//! visible while a lower one is still being committed. Every transaction below the snapshot's
//! xmin has finished, so the rows below it are final and a cursor at xmin has passed nothing
//! that can still appear. The cost: one long-running transaction anywhere on the server holds
//! xmin back, and the feed with it, until it ends.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::db_error;
use crate::session::store::{FeedPage, FeedPosition, FeedQuery, RevokedSession, StoreError};
use crate::store::driver::corrupt;

/// The snapshot's xmin (one row even when nothing follows the cursor), then up to `$4` rows
/// after the cursor `($1, $2)` made at or after `$3`, all below xmin, in cursor order. One
/// statement: the rows are read in the snapshot whose xmin is returned.
const PAGE: &str = "
    SELECT s.xmin::text AS xmin, o.xid, o.id, o.session_id, o.user_id, o.created_at
    FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) s
    LEFT JOIN LATERAL (
        SELECT feed_xid::text AS xid, id, payload->'data'->>'session_id' AS session_id,
               payload->'data'->>'user_id' AS user_id, created_at
        FROM outbox
        WHERE subject = 'session.revoked' AND feed_xid < s.xmin
          AND (feed_xid, id) > ($1::text::xid8, $2) AND created_at >= $3
        ORDER BY feed_xid, id
        LIMIT $4
    ) o ON TRUE
    ORDER BY o.xid::xid8, o.id";

pub(super) async fn revocations(pool: &PgPool, query: &FeedQuery) -> Result<FeedPage, StoreError> {
    let after = query.after.unwrap_or_default();
    let found = sqlx::query(PAGE)
        .bind(after.major.to_string())
        .bind(after.minor)
        .bind(query.since)
        .bind(i64::from(query.limit) + 1)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let xmin = match found.first() {
        Some(row) => xid(row, "xmin")?,
        None => return Err(corrupt("feed snapshot", "no xmin row")),
    };
    let mut entries = Vec::with_capacity(found.len());
    for row in &found {
        if row.try_get::<Option<String>, _>("xid").map_err(db_error)?.is_some() {
            entries.push((position(row)?, revoked(row)?));
        }
    }
    let has_more = entries.len() > query.limit as usize;
    entries.truncate(query.limit as usize);
    let cursor = match entries.last() {
        Some((last, _)) if has_more => *last,
        // Every row below xmin has been read: continue at xmin (`minor` nil sorts first).
        _ => FeedPosition { major: xmin, minor: Uuid::nil() }.max(after),
    };
    Ok(FeedPage { revocations: entries.into_iter().map(|(_, r)| r).collect(), cursor, has_more })
}

fn xid(row: &PgRow, column: &str) -> Result<u64, StoreError> {
    let text: String = row.try_get(column).map_err(db_error)?;
    text.parse().map_err(|_| corrupt(column, &text))
}

fn position(row: &PgRow) -> Result<FeedPosition, StoreError> {
    Ok(FeedPosition { major: xid(row, "xid")?, minor: row.try_get("id").map_err(db_error)? })
}

fn revoked(row: &PgRow) -> Result<RevokedSession, StoreError> {
    let session_id: Option<String> = row.try_get("session_id").map_err(db_error)?;
    let session_id = session_id.as_deref().and_then(|s| Uuid::try_parse(s).ok());
    let user_id: Option<String> = row.try_get("user_id").map_err(db_error)?;
    match (session_id, user_id) {
        (Some(session_id), Some(user_id)) => {
            Ok(RevokedSession { session_id, user_id, revoked_at: row.try_get("created_at").map_err(db_error)? })
        }
        _ => Err(corrupt("session.revoked event", "no data.session_id or data.user_id")),
    }
}
