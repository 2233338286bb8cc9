//! Creating, reading, listing and editing sessions on Postgres.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::rows::{self, bind_audit, bind_event, bind_session};
use super::{db_error, journal};
use crate::session::store::{Creation, ListQuery, SessionUpdate, StatusFilter, StoreError};
use crate::session::trail::Trail;
use crate::session::{AuditRecord, SessionRecord};

/// Takes the user's creation lock, then inserts the session ($1-$24), its audit record ($25-$34)
/// and its `session.created` event ($35-$38). The lock is a transaction-scoped advisory lock on
/// the user id, so concurrent creations for one user queue here. Audit and event are selected
/// from the insert, so they exist only if the session does.
const INSERT_SESSION: &str = concat!(
    "WITH user_lock AS (SELECT pg_advisory_xact_lock(hashtextextended($2, 0))),
     session AS (INSERT INTO sessions (",
    session_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
              $20, $21, $22, $23, $24 FROM user_lock RETURNING id),
     audit AS (INSERT INTO audit_log (",
    audit_columns!(),
    ") SELECT $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35 FROM session)
     INSERT INTO outbox (",
    outbox_columns!(),
    ") SELECT $36, $37, $38, $39 FROM session"
);

/// Revokes the user's effectively active sessions beyond the `$4` most recently used, sparing
/// the new one (`$2`). A statement of its own: under READ COMMITTED its snapshot is taken after
/// the user lock was granted, so it sees the sessions every earlier creator committed.
///
/// The victims are a MATERIALIZED CTE, chosen once; not an `IN (...)` subquery, which a re-scan
/// could make pick further rows. No `FOR UPDATE`: only creations add active sessions and they
/// are serialized by the lock, so the choice cannot go stale in a way that breaks the cap, and
/// the user's other sessions stay free to rotate meanwhile. The UPDATE still locks each victim
/// and re-checks that it is active.
const EVICT: &str = concat!(
    "WITH victims AS MATERIALIZED (
        SELECT id AS victim_id FROM sessions
        WHERE user_id = $1 AND id <> $2 AND status = 'active' AND expires_at > $3
        ORDER BY last_used_at DESC, id DESC OFFSET $4)
     UPDATE sessions SET status = 'revoked', revoked_at = $3, revoke_reason = $5
     FROM victims WHERE id = victim_id AND status = 'active'
     RETURNING ",
    session_columns!()
);

pub(super) async fn create(pool: &PgPool, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError> {
    let Creation { session, cap, audit, event, eviction } = creation;
    let mut tx = pool.begin().await.map_err(db_error)?;
    let insert = bind_session(sqlx::query(INSERT_SESSION), session);
    let insert = bind_event(bind_audit(insert, audit), event);
    insert.execute(&mut *tx).await.map_err(db_error)?;
    let evicted = sqlx::query(EVICT)
        .bind(&session.user_id)
        .bind(session.id)
        .bind(session.created_at)
        // The new session holds one of the `cap` places.
        .bind(i64::from(cap.saturating_sub(1)))
        .bind(&eviction.reason)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let evicted = rows::sessions(&evicted)?;
    journal::append(&mut *tx, &Trail::revocations(&evicted, eviction)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(evicted)
}

pub(super) async fn get(pool: &PgPool, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    row.as_ref().map(rows::session).transpose()
}

/// One page of a user's sessions. The statement is built per shape (filter, cursor) so each shape
/// is planned on its own and served by `sessions_user_created`.
pub(super) async fn list(pool: &PgPool, user_id: &str, query: &ListQuery) -> Result<Vec<SessionRecord>, StoreError> {
    let mut sql =
        QueryBuilder::<Postgres>::new(concat!("SELECT ", session_columns!(), " FROM sessions WHERE user_id = "));
    sql.push_bind(user_id);
    if query.filter == StatusFilter::Active {
        sql.push(" AND status = 'active' AND expires_at > ").push_bind(query.now);
    }
    if let Some((created_at, id)) = query.after {
        sql.push(" AND (created_at, id) < (").push_bind(created_at).push(", ").push_bind(id).push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(query.limit));
    let found = sql.build().fetch_all(pool).await.map_err(db_error)?;
    rows::sessions(&found)
}

pub(super) async fn update(
    pool: &PgPool,
    id: Uuid,
    update: &SessionUpdate,
    audit: &AuditRecord,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!(
        "UPDATE sessions SET device_name = COALESCE($2, device_name), metadata = COALESCE($3, metadata)
         WHERE id = $1 RETURNING ",
        session_columns!()
    ))
    .bind(id)
    .bind(&update.device_name)
    .bind(&update.metadata)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(session) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    journal::append(&mut *tx, &Trail::update(audit, &session)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(session))
}

pub(super) async fn extend(
    pool: &PgPool,
    id: Uuid,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
    audit: &AuditRecord,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!(
        "UPDATE sessions SET expires_at = $2, last_used_at = $3
         WHERE id = $1 AND status = 'active' AND expires_at > $3 RETURNING ",
        session_columns!()
    ))
    .bind(id)
    .bind(expires_at)
    .bind(at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(session) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    journal::append(&mut *tx, &Trail::extension(audit, &session, at)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(session))
}
