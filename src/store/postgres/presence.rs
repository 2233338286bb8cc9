//! Heartbeat flushes on Postgres: `last_seen_at` of many sessions in one statement.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::db_error;
use crate::store::presence::latest_per_session;
use crate::store::StoreError;

/// Moves `last_seen_at` forward for each `(id, seen)` pair of the two arrays. The guard in the
/// WHERE clause (rather than only `GREATEST` in the SET) leaves rows that would not advance
/// unwritten: no new row version, no WAL, and they are not counted. It is re-checked on the
/// latest row version if a concurrent flush updated the row first, so time never goes back.
/// The rows are visited in input order (id order) whether the plan is a nested loop over the
/// primary key (small flushes) or a hash join (large ones), so overlapping flushes lock alike.
/// `last_seen_at` is in no index, so an update can be HOT when its page has room.
const TOUCH: &str = "UPDATE sessions s SET last_seen_at = GREATEST(s.last_seen_at, v.seen)
     FROM UNNEST($1::uuid[], $2::timestamptz[]) AS v(id, seen)
     WHERE s.id = v.id AND (s.last_seen_at IS NULL OR s.last_seen_at < v.seen)";

/// One statement for any number of entries (the arrays are two parameters), so its text is
/// constant and stays prepared.
pub(super) async fn touch_last_seen(pool: &PgPool, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
    if seen.is_empty() {
        return Ok(0);
    }
    let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = latest_per_session(seen).into_iter().unzip();
    let done = sqlx::query(TOUCH).bind(ids).bind(times).execute(pool).await.map_err(db_error)?;
    Ok(done.rows_affected())
}
