//! Presence on SQLite: heartbeat flushes (`last_seen_at` of many sessions in one statement on the
//! write connection) and the reconciliation lookup of which live sessions are no longer active.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::db_error;
use super::rows::{micros, text};
use crate::session::reasons;
use crate::session::store::StoreError;
use crate::store::presence::{distinct, inactive_or_deleted, latest_per_session};

/// Moves `last_seen_at` forward for each `[id, micros]` pair of the JSON array `?1`. The entries
/// travel as one parameter, so there is no limit on variables to chunk around and the statement
/// text is the same for any number of them. The plan scans the array and finds each session by
/// its primary key (10,000 entries take ~30 ms; one prepared UPDATE per entry, ten times that).
/// Rows that would not advance are left unwritten and not counted.
const TOUCH: &str = "UPDATE sessions SET last_seen_at = v.seen
     FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS seen
           FROM json_each(?1)) AS v
     WHERE sessions.id = v.id AND (sessions.last_seen_at IS NULL OR sessions.last_seen_at < v.seen)";

/// Ids per reconciliation lookup: each is one bound variable of the IN list, and 500 (plus three)
/// stays far below SQLite's variable limit.
const CHUNK: usize = 500;

/// One statement, so one implicit transaction on the write connection: applied entirely or not
/// at all, and serialized with every other writer.
pub(super) async fn touch_last_seen(write: &SqlitePool, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
    if seen.is_empty() {
        return Ok(0);
    }
    let entries: Vec<Value> = latest_per_session(seen)
        .into_iter()
        .map(|(id, at)| Value::from(vec![Value::from(text(id).to_string()), Value::from(micros(at))]))
        .collect();
    let done = sqlx::query(TOUCH).bind(Value::from(entries).to_string()).execute(write).await.map_err(db_error)?;
    Ok(done.rows_affected())
}

/// See [`Store::inactive_among`](crate::store::Store::inactive_among): one read per 500 ids, on
/// the read pool (a WAL snapshot; a revocation committed a moment later is caught next round).
pub(super) async fn inactive_among(
    read: &SqlitePool,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = distinct(ids);
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        found.extend(lookup(read, chunk, now).await?);
    }
    Ok(inactive_or_deleted(ids, found))
}

/// Each row among `ids`, with why it is not effectively active at `now` (`None` when it is): the
/// stored reason of a revoked session, "expired" for an expired one. Active rows come back too,
/// so that an id missing from the answer has no row; each is found through the primary key.
async fn lookup(
    read: &SqlitePool,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Option<String>)>, StoreError> {
    let mut sql = QueryBuilder::<Sqlite>::new("SELECT id, CASE WHEN status = 'revoked' THEN COALESCE(revoke_reason, ");
    sql.push_bind(reasons::REVOKED_BY_SERVICE).push(") WHEN status = 'expired' OR expires_at <= ");
    sql.push_bind(micros(now)).push(" THEN ").push_bind(reasons::EXPIRED);
    sql.push(" END AS why FROM sessions WHERE id IN (");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(text(*id));
    }
    sql.push(")");
    // Full chunks recur every round and stay prepared; the odd-sized last one would only crowd
    // the statement cache.
    let rows = sql.build().persistent(ids.len() == CHUNK).fetch_all(read).await.map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let id: Hyphenated = row.try_get("id").map_err(db_error)?;
            Ok((id.into_uuid(), row.try_get("why").map_err(db_error)?))
        })
        .collect()
}
