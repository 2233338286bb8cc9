//! Wake on commit: a [`Store`] that raises a signal after every committed change that wrote
//! outbox rows, so the relay delivers at once rather than at its next poll. The signal is a
//! [`Notify`]: a commit while the relay is busy leaves a permit, so the relay's next wait ends at
//! once and nothing is missed. Nothing is added to the writing transaction (no Postgres
//! `NOTIFY`, which takes a database-wide lock at commit and would serialise every writer).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::session::store::{
    AuditQuery, Creation, Erased, Erasure, FeedPage, FeedQuery, ListQuery, OutboxClaim, OutboxPrune, Revocation,
    RevokeTarget, Rotation, SessionUpdate, Store, StoreError,
};
use crate::session::{AuditRecord, OutboxEvent, SessionRecord, SessionStatus};

/// `inner`, raising `committed` after each change that wrote an event. Every other call goes
/// straight through.
pub struct OutboxSignal {
    inner: Arc<dyn Store>,
    committed: Arc<Notify>,
}

impl OutboxSignal {
    /// Wraps `inner`; the relay waits on `committed`.
    pub fn new(inner: Arc<dyn Store>, committed: Arc<Notify>) -> Self {
        Self { inner, committed }
    }

    /// Passes `result` on, raising the signal first if `wrote` says the change wrote events.
    fn after<T>(&self, result: Result<T, StoreError>, wrote: impl FnOnce(&T) -> bool) -> Result<T, StoreError> {
        if result.as_ref().is_ok_and(wrote) {
            self.committed.notify_one();
        }
        result
    }
}

#[async_trait]
impl Store for OutboxSignal {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn create_session(&self, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError> {
        let created = self.inner.create_session(creation).await;
        self.after(created, |_| true)
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get_session(id).await
    }

    async fn list_user_sessions(&self, user_id: &str, query: &ListQuery) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_user_sessions(user_id, query).await
    }

    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<Option<SessionRecord>, StoreError> {
        let rotated = self.inner.rotate_refresh(rotation).await;
        self.after(rotated, Option::is_some)
    }

    async fn update_session(
        &self,
        id: Uuid,
        update: &SessionUpdate,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let updated = self.inner.update_session(id, update, audit).await;
        self.after(updated, Option::is_some)
    }

    async fn extend_session(
        &self,
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let extended = self.inner.extend_session(id, expires_at, at, audit).await;
        self.after(extended, Option::is_some)
    }

    async fn revoke_sessions(
        &self,
        target: &RevokeTarget,
        revocation: &Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let revoked = self.inner.revoke_sessions(target, revocation).await;
        self.after(revoked, |r| !r.is_empty())
    }

    async fn delete_session(&self, id: Uuid, revocation: &Revocation) -> Result<Option<SessionRecord>, StoreError> {
        let deleted = self.inner.delete_session(id, revocation).await;
        self.after(deleted, Option::is_some)
    }

    async fn erase_user(&self, erasure: &Erasure) -> Result<Erased, StoreError> {
        let erased = self.inner.erase_user(erasure).await;
        self.after(erased, |e| !e.revoked.is_empty())
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.append_audit(record).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.list_audit(query).await
    }

    async fn revocations(&self, query: &FeedQuery) -> Result<FeedPage, StoreError> {
        self.inner.revocations(query).await
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        let expired = self.inner.expire_sessions(now, limit).await;
        self.after(expired, |e| !e.is_empty())
    }

    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        self.inner.pending_events(limit).await
    }

    async fn mark_events_sent(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.mark_events_sent(ids, at).await
    }

    async fn claim_events(&self, limit: u32) -> Result<OutboxClaim, StoreError> {
        self.inner.claim_events(limit).await
    }

    async fn prune_outbox(&self, scope: OutboxPrune, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.inner.prune_outbox(scope, before, limit).await
    }

    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, i64)>, StoreError> {
        self.inner.count_by_status().await
    }

    async fn touch_last_seen(&self, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
        self.inner.touch_last_seen(seen).await
    }

    async fn inactive_among(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<(Uuid, String)>, StoreError> {
        self.inner.inactive_among(ids, now).await
    }
}
