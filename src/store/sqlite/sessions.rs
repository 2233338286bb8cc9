//! Creating, reading, listing and editing sessions on SQLite. Writes run on the single-connection
//! write pool, reads on the read pool.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::rows::{self, bind_audit, bind_event, bind_session, micros, text};
use super::{db_error, journal};
use crate::session::store::{Creation, ListQuery, SessionUpdate, StatusFilter, StoreError};
use crate::session::trail::Trail;
use crate::session::{AuditRecord, SessionRecord};

/// Inserts the session, its audit record and `session.created` event, then revokes the user's
/// effectively active sessions beyond the most recently used, sparing the new one: one
/// multi-statement query, so one round trip to the connection's worker. `LIMIT -1` is SQLite's
/// "no limit", needed before OFFSET.
///
/// Placeholders are positional `?`, bound in order of appearance: sqlx binds each statement of a
/// multi-statement query on its own, positional ones continuing where the previous statement
/// stopped, but a numbered `?NN` in a later statement is left unbound (NULL) when lower numbers
/// are unused there.
const CREATE: &str = concat!(
    "INSERT INTO sessions (",
    session_columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
     INSERT INTO audit_log (",
    audit_columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
     INSERT INTO outbox (",
    outbox_columns!(),
    ") VALUES (?, ?, ?, ?);
     UPDATE sessions SET status = 'revoked', revoked_at = ?, revoke_reason = ?
     WHERE id IN (SELECT id FROM sessions
                  WHERE user_id = ? AND id <> ? AND status = 'active' AND expires_at > ?
                  ORDER BY last_used_at DESC, id DESC LIMIT -1 OFFSET ?)
     RETURNING ",
    session_columns!()
);

/// Inserts the session with its trail and applies the cap. The transaction's first statement is
/// a write, so it holds SQLite's write lock from the start: creations (and every other writer)
/// are serialized, which is what keeps the cap exact.
pub(super) async fn create(write: &SqlitePool, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError> {
    let Creation { session, cap, audit, event, eviction } = creation;
    let query = bind_session(sqlx::query(CREATE), session);
    let at = micros(session.created_at);
    let query = bind_event(bind_audit(query, audit), event)
        .bind(at)
        .bind(&eviction.reason)
        .bind(&session.user_id)
        .bind(text(session.id))
        .bind(at)
        // The new session holds one of the `cap` places.
        .bind(i64::from(cap.saturating_sub(1)));
    let mut tx = write.begin().await.map_err(db_error)?;
    let evicted = rows::sessions(&query.fetch_all(&mut *tx).await.map_err(db_error)?)?;
    journal::append(&mut tx, &Trail::revocations(&evicted, eviction)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(evicted)
}

pub(super) async fn get(read: &SqlitePool, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = ?1"))
        .bind(text(id))
        .fetch_optional(read)
        .await
        .map_err(db_error)?;
    row.as_ref().map(rows::session).transpose()
}

/// One page of a user's sessions, newest first, built per shape (filter, cursor).
pub(super) async fn list(
    read: &SqlitePool,
    user_id: &str,
    query: &ListQuery,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut sql =
        QueryBuilder::<Sqlite>::new(concat!("SELECT ", session_columns!(), " FROM sessions WHERE user_id = "));
    sql.push_bind(user_id);
    if query.filter == StatusFilter::Active {
        sql.push(" AND status = 'active' AND expires_at > ").push_bind(micros(query.now));
    }
    if let Some((created_at, id)) = query.after {
        sql.push(" AND (created_at, id) < (").push_bind(micros(created_at)).push(", ").push_bind(text(id)).push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(query.limit));
    let found = sql.build().fetch_all(read).await.map_err(db_error)?;
    rows::sessions(&found)
}

pub(super) async fn update(
    write: &SqlitePool,
    id: Uuid,
    update: &SessionUpdate,
    audit: &AuditRecord,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = write.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!(
        "UPDATE sessions SET device_name = COALESCE(?2, device_name), metadata = COALESCE(?3, metadata)
         WHERE id = ?1 RETURNING ",
        session_columns!()
    ))
    .bind(text(id))
    .bind(&update.device_name)
    .bind(update.metadata.as_ref().map(ToString::to_string))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(session) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    journal::append(&mut tx, &Trail::update(audit, &session)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(session))
}

pub(super) async fn extend(
    write: &SqlitePool,
    id: Uuid,
    expires_at: DateTime<Utc>,
    at: DateTime<Utc>,
    audit: &AuditRecord,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = write.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!(
        "UPDATE sessions SET expires_at = ?2, last_used_at = ?3
         WHERE id = ?1 AND status = 'active' AND expires_at > ?3 RETURNING ",
        session_columns!()
    ))
    .bind(text(id))
    .bind(micros(expires_at))
    .bind(micros(at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?;
    let Some(session) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    journal::append(&mut tx, &Trail::extension(audit, &session, at)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(session))
}
