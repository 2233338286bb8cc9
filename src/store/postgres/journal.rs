//! The audit log and the outbox on Postgres: batched appends (one statement for any number of
//! records, via `UNNEST`, so the SQL text is constant and stays in the statement cache) and reads.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{db_error, rows};
use crate::session::store::{AuditQuery, StoreError};
use crate::session::trail::Trail;
use crate::session::{AuditRecord, OutboxEvent};

/// Appends audit records and outbox events in one statement; both arrays may be empty.
const INSERT_TRAIL: &str = concat!(
    "WITH audit AS (INSERT INTO audit_log (",
    audit_columns!(),
    ") SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[],
                            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int4[]))
     INSERT INTO outbox (",
    outbox_columns!(),
    ") SELECT * FROM UNNEST($12::uuid[], $13::text[], $14::jsonb[], $15::timestamptz[])"
);

/// Writes `trail` through `executor` (a transaction, so it commits with its change).
pub(super) async fn append<'e>(executor: impl PgExecutor<'e>, trail: &Trail) -> Result<(), StoreError> {
    if trail.is_empty() {
        return Ok(());
    }
    let a = &trail.audit;
    let e = &trail.events;
    sqlx::query(INSERT_TRAIL)
        .bind(a.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.session_id).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.user_id.clone()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.actor.kind()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.actor.id()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| r.ip.as_deref()).collect::<Vec<_>>())
        .bind(a.iter().map(|r| rows::attempts(r.attempts)).collect::<Vec<_>>())
        .bind(e.iter().map(|ev| ev.id).collect::<Vec<_>>())
        .bind(e.iter().map(|ev| ev.subject.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|ev| &ev.payload).collect::<Vec<_>>())
        .bind(e.iter().map(|ev| ev.created_at).collect::<Vec<_>>())
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Audit records newest first. The WHERE clause is built per combination of filters (rather than
/// `$1 IS NULL OR ...`) so each shape gets a plan that uses its index.
pub(super) async fn list_audit(pool: &PgPool, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
    let mut sql = QueryBuilder::<Postgres>::new(concat!("SELECT ", audit_columns!(), " FROM audit_log WHERE TRUE"));
    if let Some(session_id) = query.session_id {
        sql.push(" AND session_id = ").push_bind(session_id);
    }
    if let Some(user_id) = &query.user_id {
        sql.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(before) = query.before {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
    let found = sql.build().fetch_all(pool).await.map_err(db_error)?;
    found.iter().map(rows::audit).collect()
}

pub(super) async fn pending_events(pool: &PgPool, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
    let found = sqlx::query(
        "SELECT id, subject, payload, created_at FROM outbox
         WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    found.iter().map(rows::event).collect()
}

pub(super) async fn mark_events_sent(pool: &PgPool, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
    // `sent_at IS NULL` keeps the first delivery time if a relay marks an event twice.
    sqlx::query("UPDATE outbox SET sent_at = $2 WHERE id = ANY($1) AND sent_at IS NULL")
        .bind(ids)
        .bind(at)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}
