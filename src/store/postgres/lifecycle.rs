//! Lifecycle transitions on Postgres: refresh rotation, revocation, deletion and the expiry sweep.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::rows::{self, bind_audit, bind_event};
use super::{db_error, journal};
use crate::session::store::{Revocation, RevokeTarget, Rotation, StoreError};
use crate::session::trail::{revoked_copy, Trail};
use crate::session::SessionRecord;

/// The rotation compare-and-swap, in one statement (one round trip, no explicit transaction): the
/// guarded UPDATE, then the audit record ($9-$19) and event ($20-$23) selected from its result,
/// so when the guard fails nothing at all is written.
const ROTATE: &str = concat!(
    "WITH rotated AS (
        UPDATE sessions SET refresh_generation = refresh_generation + 1, refresh_hash = $3,
            prev_refresh_hash = $4, rotated_at = $5, last_used_at = $5, expires_at = $6,
            last_ip = COALESCE($7, last_ip), user_agent = COALESCE($8, user_agent)
        WHERE id = $1 AND refresh_generation = $2 AND status = 'active' AND expires_at > $5
        RETURNING ",
    session_columns!(),
    "), audit AS (INSERT INTO audit_log (",
    audit_columns!(),
    ") SELECT $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 FROM rotated),
     event AS (INSERT INTO outbox (",
    outbox_columns!(),
    ") SELECT $20, $21, $22, $23 FROM rotated)
     SELECT * FROM rotated"
);

/// The SET clause every revocation applies, and the guard that makes it idempotent.
macro_rules! revoke_sql {
    ($target:literal) => {
        concat!(
            "UPDATE sessions SET status = 'revoked', revoked_at = $1, revoke_reason = $2 WHERE ",
            $target,
            " AND status = 'active' AND expires_at > $1 RETURNING ",
            session_columns!()
        )
    };
}

const REVOKE_ONE: &str = revoke_sql!("id = $3");
pub(super) const REVOKE_USER: &str = revoke_sql!("user_id = $3");
const REVOKE_USER_EXCEPT: &str = revoke_sql!("user_id = $3 AND id <> $4");

/// Marks up to `$2` overdue active sessions expired. `SKIP LOCKED`: a sweep running on another
/// node at the same time takes other rows instead of waiting for these. MATERIALIZED so the
/// batch is chosen once (see `sessions::EVICT`).
const EXPIRE: &str = concat!(
    "WITH due AS MATERIALIZED (
        SELECT id AS due_id FROM sessions WHERE status = 'active' AND expires_at <= $1
        ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
     UPDATE sessions SET status = 'expired' FROM due WHERE id = due_id AND status = 'active'
     RETURNING ",
    session_columns!()
);

pub(super) async fn rotate(pool: &PgPool, r: &Rotation) -> Result<Option<SessionRecord>, StoreError> {
    let query = sqlx::query(ROTATE)
        .bind(r.session_id)
        .bind(r.expected_generation)
        .bind(&r.new_hash)
        .bind(&r.prev_hash)
        .bind(r.at)
        .bind(r.expires_at)
        .bind(&r.ip)
        .bind(&r.user_agent);
    let row = bind_event(bind_audit(query, &r.audit), &r.event).fetch_optional(pool).await.map_err(db_error)?;
    row.as_ref().map(rows::session).transpose()
}

pub(super) async fn revoke(
    pool: &PgPool,
    target: &RevokeTarget,
    revocation: &Revocation,
) -> Result<Vec<SessionRecord>, StoreError> {
    let query = match target {
        RevokeTarget::Session(id) => sqlx::query(REVOKE_ONE).bind(revocation.at).bind(&revocation.reason).bind(*id),
        RevokeTarget::User { user_id, except: None } => {
            sqlx::query(REVOKE_USER).bind(revocation.at).bind(&revocation.reason).bind(user_id)
        }
        RevokeTarget::User { user_id, except: Some(except) } => {
            sqlx::query(REVOKE_USER_EXCEPT).bind(revocation.at).bind(&revocation.reason).bind(user_id).bind(*except)
        }
    };
    let mut tx = pool.begin().await.map_err(db_error)?;
    let revoked = rows::sessions(&query.fetch_all(&mut *tx).await.map_err(db_error)?)?;
    // Nothing revoked and no cause to record: nothing to commit.
    let trail = Trail::revocations(&revoked, revocation);
    if trail.is_empty() {
        return Ok(revoked);
    }
    journal::append(&mut *tx, &trail).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(revoked)
}

/// Deletes the row and, if it was still active, records its revocation as well: the revoked state
/// is computed from the deleted row, so the row is never updated only to be deleted.
pub(super) async fn delete(
    pool: &PgPool,
    id: Uuid,
    revocation: &Revocation,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!("DELETE FROM sessions WHERE id = $1 RETURNING ", session_columns!()))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some(deleted) = row.as_ref().map(rows::session).transpose()? else {
        return Ok(None);
    };
    let revoked = revoked_copy(&deleted, revocation);
    journal::append(&mut *tx, &Trail::deletion(&deleted, revoked.as_ref(), revocation)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Some(revoked.unwrap_or(deleted)))
}

pub(super) async fn expire(pool: &PgPool, now: DateTime<Utc>, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let expired = sqlx::query(EXPIRE).bind(now).bind(i64::from(limit)).fetch_all(&mut *tx).await.map_err(db_error)?;
    let expired = rows::sessions(&expired)?;
    if expired.is_empty() {
        return Ok(expired);
    }
    journal::append(&mut *tx, &Trail::expirations(&expired, now)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(expired)
}
