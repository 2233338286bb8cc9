//! The production store: Postgres through a sqlx pool.
//!
//! Hot paths are shaped for round trips: a refresh rotation is one statement (a data-modifying
//! CTE), a creation is one transaction of two statements, and several audit records or events are
//! appended with one `UNNEST` insert.
//!
//! - [`sessions`](self::sessions): create (with the per-user cap), get, list, update, extend.
//! - [`lifecycle`](self::lifecycle): rotate, revoke, delete, expire.
//! - [`erasure`](self::erasure): a deleted user's sessions revoked and personal data erased.
//! - [`feed`](self::feed): the revocation feed, read from the outbox in commit order.
//! - [`journal`](self::journal): audit log and outbox appends.
//! - [`outbox`](self::outbox): the relay's claims (order per session across relays) and pruning.
//! - [`presence`](self::presence): `last_seen_at` from batched heartbeats; which live sessions
//!   are no longer active (reconciliation).
//! - [`rows`](self::rows): binding domain values and decoding rows.

mod erasure;
mod feed;
mod journal;
mod lifecycle;
mod outbox;
mod presence;
mod rows;
mod sessions;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use uuid::Uuid;

use super::driver;
use crate::session::store::{
    AuditQuery, Creation, Erased, Erasure, FeedPage, FeedQuery, ListQuery, OutboxClaim, OutboxPrune, Revocation,
    RevokeTarget, Rotation, SessionUpdate, Store, StoreError,
};
use crate::session::{AuditRecord, OutboxEvent, SessionRecord, SessionStatus};

/// Default connections per node. Measured on 2 cores: 8 connections gave 2,200 refreshes/s where
/// 32 gave 1,300, because every extra active backend adds lock and WAL contention rather than
/// throughput (docs/performance.md). Size it to a few times Postgres' cores.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a caller waits for a pooled connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions, audit and outbox in Postgres.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and applies the migrations in `migrations/postgres` (concurrent starts
    /// are safe: sqlx serializes migration runs with an advisory lock).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(db_error)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(|e| driver::migration(e, transient))?;
        Ok(Self { pool })
    }
}

/// Translates a sqlx error from Postgres into a [`StoreError`].
fn db_error(e: sqlx::Error) -> StoreError {
    driver::translate(e, transient)
}

/// SQLSTATEs worth a retry: connection trouble (08), exhausted resources (53), a server shutting
/// down (57P0x), and lost races a retry resolves (serialization failure, deadlock).
fn transient(e: &dyn DatabaseError) -> bool {
    e.code().is_some_and(|code| {
        code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code == "40001"
            || code == "40P01"
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn create_session(&self, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::create(&self.pool, creation).await
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        sessions::get(&self.pool, id).await
    }

    async fn list_user_sessions(&self, user_id: &str, query: &ListQuery) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::list(&self.pool, user_id, query).await
    }

    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<Option<SessionRecord>, StoreError> {
        lifecycle::rotate(&self.pool, rotation).await
    }

    async fn update_session(
        &self,
        id: Uuid,
        update: &SessionUpdate,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::update(&self.pool, id, update, audit).await
    }

    async fn extend_session(
        &self,
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::extend(&self.pool, id, expires_at, at, audit).await
    }

    async fn revoke_sessions(
        &self,
        target: &RevokeTarget,
        revocation: &Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        lifecycle::revoke(&self.pool, target, revocation).await
    }

    async fn delete_session(&self, id: Uuid, revocation: &Revocation) -> Result<Option<SessionRecord>, StoreError> {
        lifecycle::delete(&self.pool, id, revocation).await
    }

    async fn erase_user(&self, erasure: &Erasure) -> Result<Erased, StoreError> {
        erasure::erase_user(&self.pool, erasure).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let insert = concat!(
            "INSERT INTO audit_log (",
            audit_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        rows::bind_audit(sqlx::query(insert), record).execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        journal::list_audit(&self.pool, query).await
    }

    async fn revocations(&self, query: &FeedQuery) -> Result<FeedPage, StoreError> {
        feed::revocations(&self.pool, query).await
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        lifecycle::expire(&self.pool, now, limit).await
    }

    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        journal::pending_events(&self.pool, limit).await
    }

    async fn mark_events_sent(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        journal::mark_events_sent(&self.pool, ids, at).await
    }

    async fn claim_events(&self, limit: u32) -> Result<OutboxClaim, StoreError> {
        outbox::claim(&self.pool, limit).await
    }

    async fn prune_outbox(&self, scope: OutboxPrune, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        outbox::prune(&self.pool, scope, before, limit).await
    }

    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, i64)>, StoreError> {
        let found = sqlx::query("SELECT status, count(*) AS n FROM sessions GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        found
            .iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(db_error)?;
                let status = SessionStatus::parse(&status).ok_or_else(|| driver::corrupt("session status", &status))?;
                Ok((status, row.try_get("n").map_err(db_error)?))
            })
            .collect()
    }

    async fn touch_last_seen(&self, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
        presence::touch_last_seen(&self.pool, seen).await
    }

    async fn inactive_among(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<(Uuid, String)>, StoreError> {
        presence::inactive_among(&self.pool, ids, now).await
    }
}
