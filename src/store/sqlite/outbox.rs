//! The relay's side of the outbox on SQLite: claiming undelivered rows and pruning. SQLite is a
//! single-node store, so one relay runs: a claim holds the store's claim lock (in-process) from
//! the read of its rows until they are marked, so two relays of one process never hold the same
//! rows, and no write transaction is held while the relay publishes (it would stop every writer).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use tokio::sync::{Mutex, OwnedMutexGuard};
use uuid::Uuid;

use super::db_error;
use super::rows::{self, micros, text};
use crate::session::store::{OutboxClaim, OutboxLease, OutboxPrune, StoreError};

const CLAIM: &str =
    concat!("SELECT ", outbox_columns!(), " FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT ?1");

/// The ids travel as one JSON array, so the statement text is the same for any number of them;
/// `sent_at IS NULL` keeps the first delivery time.
const MARK_SENT: &str =
    "UPDATE outbox SET sent_at = ?1 WHERE sent_at IS NULL AND id IN (SELECT value FROM json_each(?2))";

const PRUNE_DELIVERED: &str = "DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE created_at < ?1 AND sent_at IS NOT NULL ORDER BY created_at LIMIT ?2)";

const PRUNE_ANY: &str =
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)";

/// Claims up to `limit` undelivered rows, oldest first, once the claim lock is ours.
pub(super) async fn claim(
    lock: &Arc<Mutex<()>>,
    read: &SqlitePool,
    write: &SqlitePool,
    limit: u32,
) -> Result<OutboxClaim, StoreError> {
    let guard = lock.clone().lock_owned().await;
    let found = sqlx::query(CLAIM).bind(i64::from(limit)).fetch_all(read).await.map_err(db_error)?;
    let events = found.iter().map(rows::event).collect::<Result<Vec<_>, _>>()?;
    Ok(OutboxClaim::new(events, Box::new(Lease { write: write.clone(), _guard: guard })))
}

/// Deletes up to `limit` rows created before `before`, of the kind `scope` says, oldest first.
pub(super) async fn prune(
    write: &SqlitePool,
    scope: OutboxPrune,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let sql = match scope {
        OutboxPrune::Delivered => PRUNE_DELIVERED,
        OutboxPrune::Any => PRUNE_ANY,
    };
    let done = sqlx::query(sql).bind(micros(before)).bind(i64::from(limit)).execute(write).await.map_err(db_error)?;
    Ok(done.rows_affected())
}

/// The claim lock, held until the rows are marked or the claim is dropped.
struct Lease {
    write: SqlitePool,
    _guard: OwnedMutexGuard<()>,
}

#[async_trait]
impl OutboxLease for Lease {
    async fn mark_sent(self: Box<Self>, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = serde_json::Value::from(ids.iter().map(|id| text(*id).to_string()).collect::<Vec<_>>());
        sqlx::query(MARK_SENT).bind(micros(at)).bind(ids.to_string()).execute(&self.write).await.map_err(db_error)?;
        Ok(())
    }
}
