//! The relay's side of the outbox on Postgres: claiming undelivered rows so that several nodes
//! relay together, each event published once and every session's events in order, and pruning.
//!
//! # How a claim keeps order per session across relays
//! Rows are partitioned by session (the envelope's `subject`, hashed with `hashtext`). A claim is
//! one transaction, held while the relay publishes, in two statements:
//! 1. among the oldest undelivered rows, the partitions this transaction can lock with
//!    `pg_try_advisory_xact_lock` (never waiting: a partition another relay holds is skipped),
//!    oldest first and no more than the claim's limit;
//! 2. then, in a fresh snapshot taken once those locks are held, the oldest undelivered rows of
//!    those partitions, `FOR UPDATE SKIP LOCKED`.
//!
//! A session's rows are thus only ever claimed by the one transaction holding its partition, and
//! always from its oldest undelivered row on: relay B cannot publish a session's later event while
//! relay A still holds an earlier one, because B cannot lock that session's partition until A has
//! committed (its rows then read as sent) or rolled back (they are claimed again, oldest first).
//! The locks and row locks go with the transaction: a relay that dies releases them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{db_error, rows};
use crate::session::store::{OutboxClaim, OutboxLease, OutboxPrune, StoreError};

/// The first key of every partition lock (`pg_try_advisory_xact_lock(int4, int4)`): the two-key
/// form lives apart from the one-key form sqlx's migrations lock with, and this constant keeps
/// these locks apart from any other two-key user of the database.
const PARTITION_LOCK_SPACE: i32 = 0x6f75_7462; // "outb"

/// How many of the oldest undelivered rows a claim looks at for partitions, per row it may take:
/// with several relays, the oldest rows often belong to partitions another relay holds, and a
/// wider look lets this one find others instead of idling.
const LOOK_AHEAD: i64 = 4;

/// Step 1: among the partitions of the oldest undelivered rows, oldest first, those this
/// transaction could lock, stopping at `$3` of them. The outer `LIMIT` stops the scan, so no
/// more locks are tried than the claim can use; `OFFSET 0` keeps the planner from pushing the
/// lock call down into the grouping (as a `HAVING`, where it would lock every partition of the
/// window, including partitions this claim then takes no row of, keeping other relays off them).
const LOCK_PARTITIONS: &str = "SELECT p.part FROM (
        SELECT part, min(created_at) AS oldest FROM (
            SELECT hashtext(payload->>'subject') AS part, created_at FROM outbox
            WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $2
        ) c GROUP BY part ORDER BY oldest OFFSET 0
     ) p
     WHERE pg_try_advisory_xact_lock($1, p.part)
     LIMIT $3";

/// Step 2: the oldest undelivered rows of the locked partitions.
const CLAIM: &str = concat!(
    "SELECT ",
    outbox_columns!(),
    " FROM outbox
     WHERE sent_at IS NULL AND hashtext(payload->>'subject') = ANY($1)
     ORDER BY created_at, id LIMIT $2
     FOR UPDATE SKIP LOCKED"
);

/// Marks claimed rows delivered; `sent_at IS NULL` keeps the first delivery time.
const MARK_SENT: &str = "UPDATE outbox SET sent_at = $2 WHERE id = ANY($1) AND sent_at IS NULL";

const PRUNE_DELIVERED: &str = "DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE created_at < $1 AND sent_at IS NOT NULL
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

const PRUNE_ANY: &str = "DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE created_at < $1
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Claims up to `limit` undelivered rows (see the module's documentation).
pub(super) async fn claim(pool: &PgPool, limit: u32) -> Result<OutboxClaim, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let parts: Vec<i32> = sqlx::query_scalar(LOCK_PARTITIONS)
        .bind(PARTITION_LOCK_SPACE)
        .bind(i64::from(limit) * LOOK_AHEAD)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    if parts.is_empty() {
        return Ok(OutboxClaim::new(Vec::new(), Box::new(Lease { tx })));
    }
    let found = sqlx::query(CLAIM).bind(&parts).bind(i64::from(limit)).fetch_all(&mut *tx).await.map_err(db_error)?;
    let events = found.iter().map(rows::event).collect::<Result<Vec<_>, _>>()?;
    Ok(OutboxClaim::new(events, Box::new(Lease { tx })))
}

/// Deletes up to `limit` rows created before `before`, of the kind `scope` says, oldest first.
pub(super) async fn prune(
    pool: &PgPool,
    scope: OutboxPrune,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let sql = match scope {
        OutboxPrune::Delivered => PRUNE_DELIVERED,
        OutboxPrune::Any => PRUNE_ANY,
    };
    let done = sqlx::query(sql).bind(before).bind(i64::from(limit)).execute(pool).await.map_err(db_error)?;
    Ok(done.rows_affected())
}

/// The claim's transaction: its partition and row locks last until it commits or is dropped
/// (rolled back).
struct Lease {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl OutboxLease for Lease {
    async fn mark_sent(mut self: Box<Self>, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        if !ids.is_empty() {
            sqlx::query(MARK_SENT).bind(ids).bind(at).execute(&mut *self.tx).await.map_err(db_error)?;
        }
        self.tx.commit().await.map_err(db_error)
    }
}
