//! Lifecycle transitions on SQLite: refresh rotation, revocation, deletion and the expiry sweep.
//! SQLite has no data-modifying CTEs, so each is a short transaction on the write connection whose
//! first statement is the write (the write lock is taken up front, never upgraded).

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::rows::{self, bind_audit, bind_event, micros, text};
use super::{db_error, journal};
use crate::session::store::{Revocation, RevokeTarget, Rotation, StoreError};
use crate::session::trail::{revoked_copy, Trail};
use crate::session::SessionRecord;

/// The rotation compare-and-swap and its trail in one multi-statement query (one round trip to
/// the connection's worker, inside the transaction): the guarded UPDATE, then the audit record
/// and the event, each inserted only if the statement before it changed a row (`changes()`), so
/// when the guard fails nothing at all is written. Placeholders are positional `?` (see
/// `sessions::CREATE` for why).
const ROTATE: &str = concat!(
    "UPDATE sessions SET refresh_generation = refresh_generation + 1, refresh_hash = ?,
        prev_refresh_hash = ?, rotated_at = ?, last_used_at = ?, expires_at = ?,
        last_ip = COALESCE(?, last_ip), user_agent = COALESCE(?, user_agent)
     WHERE id = ? AND refresh_generation = ? AND status = 'active' AND expires_at > ?
     RETURNING ",
    session_columns!(),
    ";
     INSERT INTO audit_log (",
    audit_columns!(),
    ") SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE changes() = 1;
     INSERT INTO outbox (",
    outbox_columns!(),
    ") SELECT ?, ?, ?, ? WHERE changes() = 1"
);

/// The SET clause every revocation applies, and the guard that makes it idempotent.
macro_rules! revoke_sql {
    ($target:literal) => {
        concat!(
            "UPDATE sessions SET status = 'revoked', revoked_at = ?1, revoke_reason = ?2 WHERE ",
            $target,
            " AND status = 'active' AND expires_at > ?1 RETURNING ",
            session_columns!()
        )
    };
}

const REVOKE_ONE: &str = revoke_sql!("id = ?3");
pub(super) const REVOKE_USER: &str = revoke_sql!("user_id = ?3");
const REVOKE_USER_EXCEPT: &str = revoke_sql!("user_id = ?3 AND id <> ?4");

const EXPIRE: &str = concat!(
    "UPDATE sessions SET status = 'expired'
     WHERE id IN (SELECT id FROM sessions WHERE status = 'active' AND expires_at <= ?1
                  ORDER BY expires_at LIMIT ?2)
     RETURNING ",
    session_columns!()
);

pub(super) async fn rotate(write: &SqlitePool, r: &Rotation) -> Result<Option<SessionRecord>, StoreError> {
    let at = micros(r.at);
    let query = sqlx::query(ROTATE)
        .bind(&r.new_hash)
        .bind(&r.prev_hash)
        .bind(at)
        .bind(at)
        .bind(micros(r.expires_at))
        .bind(&r.ip)
        .bind(&r.user_agent)
        .bind(text(r.session_id))
        .bind(r.expected_generation)
        .bind(at);
    let query = bind_event(bind_audit(query, &r.audit), &r.event);
    let mut tx = write.begin().await.map_err(db_error)?;
    // fetch_all, not fetch_optional: every statement of the query must run.
    let rows = query.fetch_all(&mut *tx).await.map_err(db_error)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let session = rows::session(row)?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(session))
}

pub(super) async fn revoke(
    write: &SqlitePool,
    target: &RevokeTarget,
    revocation: &Revocation,
) -> Result<Vec<SessionRecord>, StoreError> {
    let (at, reason) = (micros(revocation.at), &revocation.reason);
    let query = match target {
        RevokeTarget::Session(id) => sqlx::query(REVOKE_ONE).bind(at).bind(reason).bind(text(*id)),
        RevokeTarget::User { user_id, except: None } => sqlx::query(REVOKE_USER).bind(at).bind(reason).bind(user_id),
        RevokeTarget::User { user_id, except: Some(except) } => {
            sqlx::query(REVOKE_USER_EXCEPT).bind(at).bind(reason).bind(user_id).bind(text(*except))
        }
    };
    let mut tx = write.begin().await.map_err(db_error)?;
    let revoked = rows::sessions(&query.fetch_all(&mut *tx).await.map_err(db_error)?)?;
    // Nothing revoked and no cause to record: nothing to commit.
    let trail = Trail::revocations(&revoked, revocation);
    if trail.is_empty() {
        return Ok(revoked);
    }
    journal::append(&mut tx, &trail).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(revoked)
}

/// Deletes the row and, if it was still active, records its revocation as well (the revoked
/// state is computed from the deleted row rather than written first).
pub(super) async fn delete(
    write: &SqlitePool,
    id: Uuid,
    revocation: &Revocation,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = write.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!("DELETE FROM sessions WHERE id = ?1 RETURNING ", session_columns!()))
        .bind(text(id))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some(deleted) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    let revoked = revoked_copy(&deleted, revocation);
    journal::append(&mut tx, &Trail::deletion(&deleted, revoked.as_ref(), revocation)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(revoked.unwrap_or(deleted)))
}

pub(super) async fn expire(
    write: &SqlitePool,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut tx = write.begin().await.map_err(db_error)?;
    let expired =
        sqlx::query(EXPIRE).bind(micros(now)).bind(i64::from(limit)).fetch_all(&mut *tx).await.map_err(db_error)?;
    let expired = rows::sessions(&expired)?;
    if expired.is_empty() {
        return Ok(expired);
    }
    journal::append(&mut tx, &Trail::expirations(&expired, now)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(expired)
}
