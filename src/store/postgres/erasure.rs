//! Erasing a deleted user on Postgres: one transaction that erases the personal data of the
//! user's session rows, revokes the active ones (reading them back erased), erases the IPs of
//! their audit entries and kept outbox events, then appends the trail.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::lifecycle::REVOKE_USER;
use super::{db_error, journal, rows};
use crate::session::store::{Erased, Erasure, StoreError};
use crate::session::trail::Trail;

/// Erases the user's session rows that still hold personal data (any status); returns their ids.
/// Locks those rows first, so a concurrent rotation waits and then finds the session revoked.
const ERASE_SESSIONS: &str = concat!(
    "UPDATE sessions SET ",
    erase_session_data!(),
    " WHERE user_id = $1 AND ",
    holds_session_data!(),
    " RETURNING id"
);

/// Every audit entry about the user keeps its facts and loses its IP.
const ERASE_AUDIT: &str = "UPDATE audit_log SET ip = NULL WHERE user_id = $1 AND ip IS NOT NULL";

/// Kept outbox events about the user (sent or not; the relay prunes them later) lose the IP
/// their payload carries (`session.created`, `session.refreshed`). Served by the partial index
/// `outbox_user_ip`, whose expressions these are.
const ERASE_EVENTS: &str = "UPDATE outbox SET payload = jsonb_set(payload, '{data,ip}', 'null'::jsonb)
     WHERE (payload->'data'->>'user_id') = $1 AND (payload->'data'->>'ip') IS NOT NULL";

pub(super) async fn erase_user(pool: &PgPool, erasure: &Erasure) -> Result<Erased, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let erased = erase(&mut tx, erasure).await?;
    let trail = Trail::erasure(&erased.revoked, erasure, !erased.is_empty());
    if trail.is_empty() {
        // Nothing to revoke or erase: the transaction wrote nothing.
        return Ok(erased);
    }
    journal::append(&mut *tx, &trail).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(erased)
}

/// The erasing statements, in the transaction; the rows revoked are read back erased.
async fn erase(tx: &mut Transaction<'_, Postgres>, erasure: &Erasure) -> Result<Erased, StoreError> {
    let user = &erasure.user_id;
    let sessions: Vec<Uuid> =
        sqlx::query_scalar(ERASE_SESSIONS).bind(user).fetch_all(&mut **tx).await.map_err(db_error)?;
    let revocation = &erasure.revocation;
    let revoked = sqlx::query(REVOKE_USER)
        .bind(revocation.at)
        .bind(&revocation.reason)
        .bind(user)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
    let revoked = rows::sessions(&revoked)?;
    let audit_entries = sqlx::query(ERASE_AUDIT).bind(user).execute(&mut **tx).await.map_err(db_error)?.rows_affected();
    let events = sqlx::query(ERASE_EVENTS).bind(user).execute(&mut **tx).await.map_err(db_error)?.rows_affected();
    Ok(Erased { revoked, sessions, audit_entries, events })
}
