//! Heartbeat flushes on SQLite: `last_seen_at` of many sessions in one statement on the write
//! connection.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::db_error;
use super::rows::{micros, text};
use crate::store::presence::latest_per_session;
use crate::store::StoreError;

/// Moves `last_seen_at` forward for each `[id, micros]` pair of the JSON array `?1`. The entries
/// travel as one parameter, so there is no limit on variables to chunk around and the statement
/// text is the same for any number of them. The plan scans the array and finds each session by
/// its primary key (10,000 entries take ~30 ms; one prepared UPDATE per entry, ten times that).
/// Rows that would not advance are left unwritten and not counted.
const TOUCH: &str = "UPDATE sessions SET last_seen_at = v.seen
     FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS seen
           FROM json_each(?1)) AS v
     WHERE sessions.id = v.id AND (sessions.last_seen_at IS NULL OR sessions.last_seen_at < v.seen)";

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
