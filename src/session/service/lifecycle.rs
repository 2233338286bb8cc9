//! Opening, reading, listing, changing and ending sessions, and the readings operators ask for.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{ensure_active, Issued, NewSession, RequestContext, SessionService};
use crate::session::store::{AuditQuery, Creation, ListQuery, RevokeTarget, SessionUpdate, StatusFilter};
use crate::session::validate::{self, Invalid};
use crate::session::{reasons, AuditRecord, SessionError, SessionRecord, SessionStatus};

/// Rows the expiry sweep handles per statement.
pub const SWEEP_BATCH: u32 = 500;

impl SessionService {
    /// Opens a session and issues its first token pair; may evict the user's least recently used
    /// session to respect the per-user cap.
    pub async fn create(&self, new: NewSession, ctx: &RequestContext) -> Result<Issued, SessionError> {
        validate_new(&new)?;
        let now = self.now();
        let lifetimes = self.policy.lifetimes(&new.device.platform);
        let id = Uuid::new_v4();
        let token = self.refresh.issue_initial(id);
        let absolute = now + lifetimes.absolute_lifetime;
        let record = SessionRecord {
            id,
            user_id: new.user_id,
            status: SessionStatus::Active,
            device: new.device,
            first_ip: new.ip.clone(),
            last_ip: new.ip,
            user_agent: new.user_agent,
            metadata: new.metadata,
            created_at: now,
            last_used_at: now,
            expires_at: lifetimes.expiry_after_use(now, absolute),
            absolute_expires_at: absolute,
            revoked_at: None,
            revoke_reason: None,
            last_seen_at: None,
            refresh_generation: 0,
            refresh_hash: self.refresh.hash(&token),
            prev_refresh_hash: None,
            rotated_at: None,
        };
        let audit = AuditRecord::new(now, ctx.actor.clone(), "create", "ok")
            .session(id, &record.user_id)
            .ip(record.first_ip.as_deref().or(ctx.ip.as_deref()));
        let creation = Creation::new(&record, self.policy.max_sessions_per_user, audit);
        let evicted = self.store.create_session(&creation).await?;
        if !evicted.is_empty() {
            tracing::info!(user.id = %record.user_id, evicted = evicted.len(), "session limit reached");
            self.revoked(&evicted, reasons::SESSION_LIMIT).await;
        }
        Ok(self.issue(record, token.encode(), now))
    }

    /// A session as the store has it now (never from the cache).
    pub async fn stored(&self, id: Uuid) -> Result<SessionRecord, SessionError> {
        self.store.get_session(id).await?.ok_or(SessionError::NotFound)
    }

    /// A page of a user's sessions, newest first.
    pub async fn list_for_user(
        &self,
        user_id: &str,
        filter: StatusFilter,
        limit: u32,
        after: Option<(DateTime<Utc>, Uuid)>,
    ) -> Result<Vec<SessionRecord>, SessionError> {
        validate::user_id(user_id)?;
        let query = ListQuery { filter, now: self.now(), limit, after };
        Ok(self.store.list_user_sessions(user_id, &query).await?)
    }

    /// Changes the device name and/or metadata.
    pub async fn update(
        &self,
        id: Uuid,
        update: SessionUpdate,
        ctx: &RequestContext,
    ) -> Result<SessionRecord, SessionError> {
        if let Some(name) = &update.device_name {
            validate::text("device_name", name, 128)?;
        }
        if let Some(metadata) = &update.metadata {
            validate::metadata(metadata)?;
        }
        let owner = self.stored(id).await?.user_id;
        let audit = self.audit(ctx, "update", "ok").session(id, &owner);
        let updated = self.store.update_session(id, &update, &audit).await?.ok_or(SessionError::NotFound)?;
        self.changed(&[id]).await;
        Ok(updated)
    }

    /// Pushes the idle expiry to `now + idle timeout` (or `now + by`), never past the absolute
    /// expiry and never earlier than it already is (extending never shortens a session).
    pub async fn extend(
        &self,
        id: Uuid,
        by: Option<Duration>,
        ctx: &RequestContext,
    ) -> Result<SessionRecord, SessionError> {
        let now = self.now();
        let current = self.stored(id).await?;
        ensure_active(&current, now)?;
        let by = by.unwrap_or(self.policy.lifetimes(&current.device.platform).idle_timeout);
        let expires_at = (now + by).min(current.absolute_expires_at).max(current.expires_at);
        let audit = self.audit(ctx, "extend", "ok").session(id, &current.user_id);
        match self.store.extend_session(id, expires_at, now, &audit).await? {
            Some(s) => {
                self.changed(&[id]).await;
                Ok(s)
            }
            // Revoked or expired between our read and the write.
            None => Err(SessionError::inactive(&self.stored(id).await?, now)),
        }
    }

    /// Revokes one session. Revoking an inactive session changes nothing and answers its state.
    pub async fn revoke(&self, id: Uuid, reason: &str, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let revocation = self.revocation(ctx, reason);
        if let Some(s) = self.store.revoke_sessions(&RevokeTarget::Session(id), &revocation).await?.pop() {
            self.revoked(std::slice::from_ref(&s), reason).await;
            return Ok(s);
        }
        self.stored(id).await
    }

    /// Revokes (if active) and removes a session; its audit trail stays.
    pub async fn delete(&self, id: Uuid, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let revocation = self.revocation(ctx, reasons::DELETED);
        let deleted = self.store.delete_session(id, &revocation).await?.ok_or(SessionError::NotFound)?;
        // Whatever state it was in, a deleted session can keep no connection.
        self.revoked(std::slice::from_ref(&deleted), reasons::DELETED).await;
        Ok(deleted)
    }

    /// Audit trail of one session, newest first.
    pub async fn audit_of_session(
        &self,
        id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<AuditRecord>, SessionError> {
        let query = AuditQuery { session_id: Some(id), user_id: None, limit, before };
        Ok(self.store.list_audit(&query).await?)
    }

    /// Audit trail of one user, newest first.
    pub async fn audit_of_user(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<AuditRecord>, SessionError> {
        validate::user_id(user_id)?;
        let query = AuditQuery { session_id: None, user_id: Some(user_id.to_owned()), limit, before };
        Ok(self.store.list_audit(&query).await?)
    }

    /// Marks sessions past their expiry as expired (with audit and events), in batches until none
    /// is left. Returns how many were expired.
    pub async fn sweep_expired(&self) -> Result<usize, SessionError> {
        let mut total = 0;
        loop {
            let batch = self.store.expire_sessions(self.now(), SWEEP_BATCH).await?;
            self.revoked(&batch, reasons::EXPIRED).await;
            total += batch.len();
            if batch.len() < SWEEP_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Records when live connections were last heard from (see [`Store::touch_last_seen`]).
    /// Returns the number of sessions changed.
    ///
    /// [`Store::touch_last_seen`]: crate::session::store::Store::touch_last_seen
    pub async fn record_last_seen(&self, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, SessionError> {
        Ok(self.store.touch_last_seen(seen).await?)
    }

    /// Sessions per stored state (for the operator endpoints).
    pub async fn count_by_status(&self) -> Result<Vec<(SessionStatus, i64)>, SessionError> {
        Ok(self.store.count_by_status().await?)
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), SessionError> {
        Ok(self.store.ping().await?)
    }

    /// The store's backend: `"postgres"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }
}

fn validate_new(new: &NewSession) -> Result<(), Invalid> {
    validate::user_id(&new.user_id)?;
    validate::device_id(&new.device.id)?;
    validate::platform(&new.device.platform)?;
    let d = &new.device;
    for (field, value) in [
        ("device.name", &d.name),
        ("device.model", &d.model),
        ("device.app_version", &d.app_version),
        ("device.fingerprint", &d.fingerprint),
    ] {
        if let Some(v) = value {
            validate::text(field, v, 128)?;
        }
    }
    if let Some(ip) = &new.ip {
        validate::ip(ip)?;
    }
    if let Some(ua) = &new.user_agent {
        validate::text("user_agent", ua, 512)?;
    }
    validate::metadata(&new.metadata)
}
