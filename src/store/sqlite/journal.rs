//! The audit log and the outbox on SQLite: multi-row appends inside the caller's transaction, and
//! reads.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::db_error;
use super::rows::{self, micros, text};
use crate::session::store::{AuditQuery, StoreError};
use crate::session::trail::Trail;
use crate::session::{AuditRecord, OutboxEvent};

/// Rows per multi-row INSERT: 10 parameters each stays far below SQLite's parameter limit.
const CHUNK: usize = 500;

/// Writes `trail` on `conn` (inside the transaction of the change it describes).
///
/// Audit rows and events go in one multi-statement query (per 500 rows of each): every query is a
/// round trip to the connection's worker thread, which costs more than SQLite's work here.
pub(super) async fn append(conn: &mut SqliteConnection, trail: &Trail) -> Result<(), StoreError> {
    let (mut audit, mut events) = (trail.audit.chunks(CHUNK), trail.events.chunks(CHUNK));
    for _ in 0..audit.len().max(events.len()) {
        insert(conn, audit.next().unwrap_or_default(), events.next().unwrap_or_default()).await?;
    }
    Ok(())
}

async fn insert(conn: &mut SqliteConnection, audit: &[AuditRecord], events: &[OutboxEvent]) -> Result<(), StoreError> {
    let mut sql = QueryBuilder::<Sqlite>::new("");
    if !audit.is_empty() {
        sql.push(concat!("INSERT INTO audit_log (", audit_columns!(), ") "));
        sql.push_values(audit, |row, record| rows::push_audit(row, record));
        sql.push(";\n");
    }
    if !events.is_empty() {
        sql.push(concat!("INSERT INTO outbox (", outbox_columns!(), ") "));
        sql.push_values(events, |row, event| rows::push_event(row, event));
    }
    // The few small shapes (one audit record with one or two events) recur on every request and
    // stay prepared; big batches (sweeps, log-out-everywhere) would only crowd them out.
    sql.build().persistent(audit.len() + events.len() <= 3).execute(conn).await.map_err(db_error)?;
    Ok(())
}

/// Audit records newest first; the WHERE clause is built per combination of filters so each uses
/// its index.
pub(super) async fn list_audit(pool: &SqlitePool, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let mut sql = QueryBuilder::<Sqlite>::new(concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE 1"));
    if let Some(session_id) = query.session_id {
        sql.push(" AND session_id = ").push_bind(text(session_id));
    }
    if let Some(user_id) = &query.user_id {
        sql.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(before) = query.before {
        sql.push(" AND id < ").push_bind(text(before));
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
    let found = sql.build().fetch_all(pool).await.map_err(db_error)?;
    found.iter().map(rows::audit).collect()
}

pub(super) async fn pending_events(pool: &SqlitePool, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
    let found = sqlx::query(concat!(
        "SELECT ",
        outbox_columns!(),
        " FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT ?1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    found.iter().map(rows::event).collect()
}

/// The ids travel as one JSON array, so the statement text is the same for any number of them.
/// `sent_at IS NULL` keeps the first delivery time if a relay marks an event twice.
pub(super) async fn mark_events_sent(pool: &SqlitePool, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
    let ids = serde_json::Value::from(ids.iter().map(|id| text(*id).to_string()).collect::<Vec<_>>());
    sqlx::query(
        "UPDATE outbox SET sent_at = ?1
         WHERE sent_at IS NULL AND id IN (SELECT value FROM json_each(?2))",
    )
    .bind(micros(at))
    .bind(ids.to_string())
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(())
}
