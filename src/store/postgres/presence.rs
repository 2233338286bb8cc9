//! Presence on Postgres: heartbeat flushes (`last_seen_at` of many sessions in one statement) and
//! the reconciliation lookup of which live sessions are no longer active.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::db_error;
use crate::session::reasons;
use crate::session::store::StoreError;
use crate::store::presence::{distinct, inactive_or_deleted, latest_per_session};

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

/// Each row among the ids of `$1`, with why it is not effectively active at `$2` (NULL when it
/// is): the stored reason of a revoked session (`$3` if none was stored), `$4` for an expired
/// one. Active rows come back too, so that an id missing from the answer has no row. The ids are
/// one array parameter: one statement for any number of them, its text constant (stays
/// prepared), each row found through the primary key.
const INACTIVE: &str = "SELECT id, CASE WHEN status = 'revoked' THEN COALESCE(revoke_reason, $3)
                                   WHEN status = 'expired' OR expires_at <= $2 THEN $4 END AS why
     FROM sessions WHERE id = ANY($1)";

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

/// See [`Store::inactive_among`](crate::store::Store::inactive_among): one read, whatever the
/// number of ids.
pub(super) async fn inactive_among(
    pool: &PgPool,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = distinct(ids);
    let rows = sqlx::query(INACTIVE)
        .bind(&ids)
        .bind(now)
        .bind(reasons::REVOKED_BY_SERVICE)
        .bind(reasons::EXPIRED)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let found = rows
        .iter()
        .map(|row| Ok((row.try_get("id").map_err(db_error)?, row.try_get("why").map_err(db_error)?)))
        .collect::<Result<HashMap<Uuid, Option<String>>, StoreError>>()?;
    Ok(inactive_or_deleted(ids, found))
}
